"""Order use cases: capture, pay, cancel, fulfilment steps, returns, rules, recovery."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omni.order.v1 import events_pb2 as ev
from omni.order.v1 import order_pb2 as pb

from libs.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.order import metrics
from services.order.adapters import proto
from services.order.adapters.repository import OrderRepository, OrderRow
from services.order.domain import orders as rules
from services.order.domain.orders import NewOrder, Payment
from services.order.domain.routing import Capability
from services.order.domain.state_machine import (
    DONE,
    IN_FLIGHT,
    LEFT_STOCK,
    FulfilmentStatus,
    Handover,
    OrderStatus,
    Step,
    check_cancellable,
    check_payable,
    next_fulfilment_status,
)
from services.order.service_layer import workflow
from services.order.service_layer.context import DEFAULT_RULES, OrderContext
from services.order.service_layer.stored import stored_new_order

log = logging.getLogger(__name__)
S = OrderStatus
F = FulfilmentStatus


# --- capture ---------------------------------------------------------------------------------


async def check_references(ctx: OrderContext, order: NewOrder) -> dict[str, str]:
    """Unknown SKUs (catalog) and stores (inventory) → INVALID_ARGUMENT naming the field;
    nothing is written. Returns each SKU's category for the order lines."""
    v = Validator()
    categories = await ctx.catalog.categories(line.sku_code for line in order.lines)
    for i, line in enumerate(order.lines):
        if line.sku_code not in categories:
            v.add(f"lines[{i}].sku_code", f"unknown SKU {line.sku_code}")
    if order.pickup_store_id:
        place = await ctx.inventory.place(order.pickup_store_id)
        if place is None:
            v.add("pickup_store_id", f"unknown or inactive store {order.pickup_store_id}")
        elif Capability.PICKUP not in place.capabilities:
            v.add("pickup_store_id", f"{order.pickup_store_id} does not offer pickup")
    if order.selling_store_id and await ctx.inventory.place(order.selling_store_id) is None:
        v.add("selling_store_id", f"unknown or inactive store {order.selling_store_id}")
    v.raise_if_any()
    return categories


async def existing_capture(repo: OrderRepository, order: NewOrder) -> str | None:
    """The order already captured under this channel order id, if its content is the same;
    ALREADY_EXISTS naming what differs otherwise."""
    found = await repo.by_channel_order(order.channel_id, order.channel_order_id)
    if found is None:
        return None
    if found["content_hash"] != order.fingerprint():
        diff = rules.differences(order, stored_new_order(found, await repo.lines(found.order_id)))
        metrics.DUPLICATE_CAPTURES.labels("refused").inc()
        raise AlreadyExists(
            f"channel order {order.channel_order_id} of {order.channel_id} was already captured "
            f"as {found.order_id} with different content ({', '.join(diff) or 'content'} differ)"
        )
    metrics.DUPLICATE_CAPTURES.labels("same").inc()
    return found.order_id


async def insert_order(
    uow: UnitOfWork, order: NewOrder, categories: dict[str, str]
) -> tuple[str, bool]:
    """The order's id, and whether this call created it (False: captured before)."""
    repo = OrderRepository(uow.session)
    existing = await existing_capture(repo, order)
    if existing is not None:
        return existing, False
    order_id = f"O{uuid.uuid4().hex[:20].upper()}"
    totals = [
        rules.line_total(ln.unit_price_minor, ln.quantity, ln.discount_minor) for ln in order.lines
    ]
    assert order.mode is not None and order.payment is not None
    inserted = await repo.insert_order(
        {
            "order_id": order_id,
            "channel_id": order.channel_id,
            "channel_order_id": order.channel_order_id,
            "content_hash": order.fingerprint(),
            "channel_kind": int(order.channel_kind or 0),
            "member_id": order.member_id,
            "guest_contact": order.guest_contact,
            "mode": order.mode.value,
            "aisle_handover": order.aisle_handover.value,
            "selling_store_id": order.selling_store_id,
            "selling_guide_staff_id": order.selling_guide_staff_id,
            "referring_guide_code": order.referring_guide_code,
            "pickup_store_id": order.pickup_store_id,
            "stock_channel": order.stock_channel or order.channel_id,
            "address": proto.address_to_json(order.address),
            "currency": order.currency,
            "total_minor": sum(totals),
            "status": S.CREATED.value,
            "payment": order.payment.value,
        },
        [
            {
                "order_id": order_id,
                "line_id": rules.line_id(i),
                "position": i,
                "sku_code": line.sku_code,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "discount_minor": line.discount_minor,
                "line_total_minor": totals[i],
                "category_code": categories.get(line.sku_code, ""),
            }
            for i, line in enumerate(order.lines)
        ],
    )
    if not inserted:
        # A concurrent capture of the same channel order won the unique index.
        existing = await existing_capture(repo, order)
        assert existing is not None
        return existing, False
    await repo.record(order_id, S.CREATED, S.CREATED, "captured")
    uow.after_commit(
        metrics.ORDERS_CAPTURED.labels(
            metrics.channel_kind_label(order.channel_kind), order.mode.value
        ).inc
    )
    uow.emit(ev.OrderCreatedEvent(order=await workflow.order_proto(repo, order_id)), order_id)
    return order_id, True


async def resent_payment(ctx: OrderContext, order_id: str, payment: Payment | None) -> None:
    """A channel re-sent an order it had sent unpaid, now paid (the common marketplace
    case): the payment is applied as PayOrder would (once), so the order does not expire
    unpaid. Re-sent without payment, or paid already, it changes nothing."""
    if payment is None or payment is Payment.AWAITING:
        return
    async with ctx.uow() as uow:
        await pay(uow, order_id, payment)
        await uow.commit()


# --- payment and cancel ------------------------------------------------------------------------


async def pay(uow: UnitOfWork, order_id: str, payment: Payment | None) -> None:
    """Payment arrived (PayOrder, or a channel re-sending the order now paid): a reserved
    order becomes paid; one still being routed or held takes the payment with it. The same
    payment twice changes nothing; an order past payment (cancelled) is FAILED_PRECONDITION."""
    if payment is None or payment is Payment.AWAITING:
        raise InvalidArgument.field("payment_state", "must be PAID_ONLINE or PAID_AT_POS")
    repo = OrderRepository(uow.session)
    row = await _locked(repo, order_id)
    if Payment(row["payment"]) is not Payment.AWAITING:
        return  # Paid already: the same payment reported twice.
    check_payable(row.status)
    await repo.update(order_id, payment=payment.value)
    if row.status is S.RESERVED:
        await workflow.transition(uow, repo, order_id, S.RESERVED, S.PAID, payment.value)
        uow.emit(
            ev.OrderPaidEvent(
                order=await workflow.order_proto(repo, order_id),
                pay_time=proto.ts(datetime.now(UTC)),
            ),
            order_id,
        )


async def request_cancel(uow: UnitOfWork, order_id: str, reason: str) -> None:
    if len(reason) > rules.MAX_TEXT_LENGTH:
        raise InvalidArgument.field("reason", f"must be at most {rules.MAX_TEXT_LENGTH} characters")
    repo = OrderRepository(uow.session)
    row = await _locked(repo, order_id)
    if row.status in {S.CANCELLING, S.CANCELLED}:
        return
    check_cancellable(row.status)
    for f in await repo.fulfilments_of(order_id):
        if F(f["status"]) not in {F.PLANNED, F.PENDING, F.READY_FOR_PICKUP}:
            raise FailedPrecondition(
                f"fulfilment order {f['fulfilment_id']} is {f['status']}; goods have left, "
                "so the order cannot be cancelled (return it instead)"
            )
    await begin_cancel(uow, repo, row, reason)


async def begin_cancel(uow: UnitOfWork, repo: OrderRepository, row: OrderRow, reason: str) -> None:
    """Nothing held yet → cancelled at once; otherwise CANCELLING, and the worker releases."""
    if row.status in {S.CREATED, S.UNFILLABLE}:
        await repo.delete_planned(row.order_id)
        await workflow.transition(
            uow, repo, row.order_id, row.status, S.CANCELLED, reason, cancel_reason=reason
        )
        uow.after_commit(metrics.CANCELLATIONS.labels(metrics.cancel_reason_label(reason)).inc)
        uow.emit(
            ev.OrderCancelledEvent(
                order=await workflow.order_proto(repo, row.order_id),
                reason=reason,
                cancel_time=proto.ts(datetime.now(UTC)),
            ),
            row.order_id,
        )
    else:
        await workflow.transition(
            uow, repo, row.order_id, row.status, S.CANCELLING, reason, cancel_reason=reason
        )


async def _locked(repo: OrderRepository, order_id: str) -> OrderRow:
    row = await repo.get(order_id, lock=True)
    if row is None:
        raise NotFound(f"order {order_id} not found")
    return row


async def hold_expired(uow: UnitOfWork, reservation_key: str) -> None:
    """Inventory ended one of our holds on its own (its safety-net expiry). An unpaid order
    is cancelled (its other holds released by the worker); for a paid order the fact is
    recorded in its history for operations — the goods may still be there."""
    repo = OrderRepository(uow.session)
    leg = await repo.fulfilment_by_hold(reservation_key)
    if leg is None:
        return  # A hold of an earlier routing attempt, already given back.
    row = await repo.get(leg["order_id"], lock=True)
    if row is None:
        return
    metrics.HOLDS_EXPIRED.labels(row.status.value).inc()
    if row.status is S.RESERVED:
        await begin_cancel(uow, repo, row, "hold_expired")
    elif row.status in {S.PAID, S.ALLOCATED, S.SHIPPED}:
        await repo.record(
            row.order_id, row.status, row.status, f"hold {reservation_key} expired at inventory"
        )


# --- fulfilment steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    fulfilment: dict[str, Any]
    order_id: str


async def fulfilment_step(
    ctx: OrderContext, uow: UnitOfWork, fulfilment_id: str, step: Step, assignee: str = ""
) -> StepResult:
    """Move one fulfilment order a step; the inventory calls made on the way are idempotent
    on the fulfilment's keys, so a retried request is safe. The order row is locked first
    (as cancel does), so a cancel and a shipment cannot cross."""
    if len(assignee) > rules.MAX_ID_LENGTH:
        raise InvalidArgument.field("assignee", f"must be at most {rules.MAX_ID_LENGTH} characters")
    repo = OrderRepository(uow.session)
    found = await repo.fulfilment(fulfilment_id)
    if found is None:
        raise NotFound(f"fulfilment order {fulfilment_id} not found")
    row = await _locked(repo, found["order_id"])
    f = await repo.fulfilment(fulfilment_id, lock=True)
    assert f is not None
    if row.status not in {S.ALLOCATED, S.SHIPPED}:
        raise FailedPrecondition(f"order {row.order_id} is {row.status.value}")
    current = F(f["status"])
    handover = Handover(f["handover"])
    to = next_fulfilment_status(current, step, handover, f["via_transfer"])
    values: dict[str, Any] = {"status": to.value}
    if assignee:
        values["assignee"] = assignee
    inv = ctx.inventory
    if to is F.TRANSFER_IN_TRANSIT:
        # The hold at the source must end for the goods to leave on the transfer; the
        # units then travel in transit, promised to no one.
        await inv.release(f["reservation_key"], "goods leave on a transfer")
        await inv.ship_transfer(f"ship:{f['transfer_id']}", f["transfer_id"])
    elif current is F.TRANSFER_IN_TRANSIT and to is F.READY_FOR_PICKUP:
        await inv.receive_transfer(f"receive:{f['transfer_id']}", f["transfer_id"])
        at_store = f"{f['reservation_key']}.store"
        await inv.reserve(
            at_store,
            row["stock_channel"],
            workflow.hold_lines(f, f["handover_store_id"]),
        )
        values["reservation_key"] = at_store
    if to in LEFT_STOCK and current not in LEFT_STOCK:
        await inv.confirm(values.get("reservation_key", f["reservation_key"]))
    await repo.update_fulfilment(fulfilment_id, **values)
    updated = await repo.fulfilment(fulfilment_id)
    assert updated is not None
    event_pb = proto.fulfilment_to_proto(updated)
    if to is F.SHIPPED:
        uow.emit(ev.FulfilmentShippedEvent(fulfilment_order=event_pb), row.order_id)
    elif to is F.READY_FOR_PICKUP:
        uow.emit(ev.FulfilmentReadyForPickupEvent(fulfilment_order=event_pb), row.order_id)
    elif to in DONE:
        uow.emit(ev.FulfilmentDeliveredEvent(fulfilment_order=event_pb), row.order_id)
    status = row.status
    if to in LEFT_STOCK and status is S.ALLOCATED:
        await workflow.transition(
            uow, repo, row.order_id, S.ALLOCATED, S.SHIPPED, f"{fulfilment_id} {to.value}"
        )
        status = S.SHIPPED
    all_legs = await repo.fulfilments_of(row.order_id)
    if all(F(x["status"]) in DONE for x in all_legs):
        await workflow.complete(uow, repo, row.order_id, status, "every fulfilment order delivered")
    return StepResult(updated, row.order_id)


# --- returns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnLine:
    line_id: str
    quantity: int
    resaleable: bool | None


async def receive_return(
    ctx: OrderContext,
    uow: UnitOfWork,
    order_id: str,
    receiving_location_id: str,
    by_post: bool,
    lines: Sequence[ReturnLine],
) -> dict[str, Any]:
    """Goods back at any store or by post: refund per line (see domain.orders.refund_for),
    the event for member and distribution; restocking at the receiving location follows the
    commit (finish_restock), resumed by the recovery task if the process stops."""
    v = Validator()
    v.check(bool(receiving_location_id), "receiving_location_id", "is required")
    v.check(
        len(receiving_location_id) <= rules.MAX_ID_LENGTH,
        "receiving_location_id",
        f"must be at most {rules.MAX_ID_LENGTH} characters",
    )
    v.check(bool(lines), "lines", "must have at least one line")
    for i, line in enumerate(lines):
        v.check(line.quantity > 0, f"lines[{i}].quantity", "must be greater than 0")
        v.check(line.resaleable is not None, f"lines[{i}].condition", "is required")
    v.check(len({line.line_id for line in lines}) == len(lines), "lines", "each line at most once")
    v.raise_if_any()
    repo = OrderRepository(uow.session)
    row = await _locked(repo, order_id)
    if row.status not in {S.SHIPPED, S.COMPLETED}:
        raise FailedPrecondition(
            f"order {order_id} is {row.status.value}; only goods that reached the customer "
            "can be returned"
        )
    stored = {line["line_id"]: line for line in await repo.lines(order_id)}
    for i, line in enumerate(lines):
        sold = stored.get(line.line_id)
        if sold is None:
            v.add(f"lines[{i}].line_id", f"order {order_id} has no line {line.line_id}")
        elif sold["returned_quantity"] + line.quantity > sold["quantity"]:
            v.add(
                f"lines[{i}].quantity",
                f"{sold['quantity'] - sold['returned_quantity']} unit(s) of {line.line_id} "
                "can still be returned",
            )
    v.raise_if_any()
    if await ctx.inventory.place(receiving_location_id) is None:
        raise InvalidArgument.field(
            "receiving_location_id", f"unknown or inactive location {receiving_location_id}"
        )
    returned: list[dict[str, Any]] = []
    for line in lines:
        sold = stored[line.line_id]
        refund = rules.refund_for(
            sold["line_total_minor"], sold["quantity"], sold["returned_quantity"], line.quantity
        )
        await repo.add_returned(order_id, line.line_id, line.quantity, refund)
        returned.append(
            {
                "line_id": line.line_id,
                "sku_code": sold["sku_code"],
                "quantity": line.quantity,
                "refund_minor": refund,
                "restock": bool(line.resaleable),
            }
        )
        metrics.RETURNED_UNITS.labels("resaleable" if line.resaleable else "damaged").inc(
            line.quantity
        )
    total = sum(r["refund_minor"] for r in returned)
    metrics.REFUNDED_MINOR.inc(total)
    return_id = f"R{uuid.uuid4().hex[:20].upper()}"
    now = datetime.now(UTC)
    record = {
        "return_id": return_id,
        "order_id": order_id,
        "receiving_location_id": receiving_location_id,
        "by_post": by_post,
        "lines": returned,
        "refund_total_minor": total,
        "currency": row["currency"],
        "restocked": False,
        "received_at": now,
    }
    await repo.add_return(record)
    await repo.record(order_id, row.status, row.status, f"return {return_id} received")
    uow.emit(
        ev.OrderReturnReceivedEvent(
            return_id=return_id,
            order_id=order_id,
            member_id=row["member_id"],
            receiving_location_id=receiving_location_id,
            lines=[
                pb.ReturnedLine(
                    line_id=r["line_id"],
                    sku_code=r["sku_code"],
                    quantity=r["quantity"],
                    refund=proto.money(r["refund_minor"], row["currency"]),
                )
                for r in returned
            ],
            refund_total=proto.money(total, row["currency"]),
            receive_time=proto.ts(now),
        ),
        order_id,
    )
    return record


async def finish_restock(ctx: OrderContext, record: dict[str, Any]) -> None:
    for line in record["lines"]:
        if line["restock"]:
            await ctx.inventory.restock_return(
                f"{record['return_id']}:{line['line_id']}",
                record["receiving_location_id"],
                line["sku_code"],
                line["quantity"],
                record["order_id"],
            )
    async with ctx.uow() as uow:
        await OrderRepository(uow.session).mark_restocked(record["return_id"])
        await uow.commit()


# --- routing rules -----------------------------------------------------------------------------


MAX_RULE_LOCATIONS = 1000


async def set_rules(uow: UnitOfWork, rules_pb: pb.RoutingRules) -> dict[str, Any]:
    v = Validator()
    v.check(bool(rules_pb.channel_id), "rules.channel_id", "is required")
    if rules_pb.channel_id:
        v.check(
            bool(rules.CHANNEL_PATTERN.match(rules_pb.channel_id)),
            "rules.channel_id",
            "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
        )
    for name in ("location_priority", "excluded_location_ids"):
        ids = list(getattr(rules_pb, name))
        v.check(len(ids) <= MAX_RULE_LOCATIONS, f"rules.{name}", f"at most {MAX_RULE_LOCATIONS}")
        for i, location_id in enumerate(ids):
            v.check(
                0 < len(location_id) <= rules.MAX_ID_LENGTH,
                f"rules.{name}[{i}]",
                f"must be 1 to {rules.MAX_ID_LENGTH} characters",
            )
    v.check(
        rules_pb.payment_timeout_seconds >= 0,
        "rules.payment_timeout_seconds",
        "must not be negative",
    )
    v.check(
        rules_pb.unfillable_timeout_seconds >= 0,
        "rules.unfillable_timeout_seconds",
        "must not be negative",
    )
    v.check(
        rules_pb.distance_tolerance_meters >= 0,
        "rules.distance_tolerance_meters",
        "must not be negative",
    )
    v.check(
        len(set(rules_pb.location_priority)) == len(rules_pb.location_priority),
        "rules.location_priority",
        "each location at most once",
    )
    v.raise_if_any()
    body = {
        "same_city_first": rules_pb.same_city_first,
        "location_priority": list(rules_pb.location_priority),
        "excluded_location_ids": list(rules_pb.excluded_location_ids),
        "payment_timeout_seconds": rules_pb.payment_timeout_seconds
        or DEFAULT_RULES["payment_timeout_seconds"],
        "unfillable_timeout_seconds": rules_pb.unfillable_timeout_seconds
        or DEFAULT_RULES["unfillable_timeout_seconds"],
        "distance_tolerance_meters": rules_pb.distance_tolerance_meters,
    }
    return await OrderRepository(uow.session).add_rules(rules_pb.channel_id, body)


# --- background: recovery, expiry, unfillable queue ---------------------------------------------


RECOVERY_CONCURRENCY = 8


async def drive_all(ctx: OrderContext, order_ids: Sequence[str]) -> None:
    """Drive several orders at once (each under its own lease); one failing does not stop
    the others — the next round retries it."""
    gate = asyncio.Semaphore(RECOVERY_CONCURRENCY)

    async def one(order_id: str) -> None:
        async with gate:
            try:
                await workflow.drive(ctx, order_id)
            except Exception:
                log.exception("driving order failed", extra={"order_id": order_id})

    await asyncio.gather(*(one(order_id) for order_id in order_ids))


async def recover_once(ctx: OrderContext, now: datetime, batch: int = 50) -> int:
    """One round of the background task (every replica runs it; rows are shared out with
    SKIP LOCKED and each order is driven under its lease). Returns the work done."""
    done = 0
    async with ctx.uow() as uow:
        stuck = await OrderRepository(uow.session).due_for_work(
            sorted(IN_FLIGHT, key=lambda s: s.value), ctx.config.recovery_idle_seconds, batch
        )
        await uow.commit()
    metrics.RECOVERED.inc(len(stuck))
    await drive_all(ctx, stuck)
    done += len(stuck)

    # Unpaid orders whose time ran out: release their stock.
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        unpaid = await repo.expired(S.RESERVED, "pay_deadline", now, batch)
        for order_id in unpaid:
            row = await repo.get(order_id)
            assert row is not None
            await begin_cancel(uow, repo, row, "unpaid_expired")
        await uow.commit()
    await drive_all(ctx, unpaid)
    done += len(unpaid)

    # Unfillable orders past their deadline are cancelled (they hold nothing).
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        overdue = await repo.expired(S.UNFILLABLE, "unfillable_deadline", now, batch)
        for order_id in overdue:
            row = await repo.get(order_id)
            assert row is not None
            await begin_cancel(uow, repo, row, "unfillable_deadline")
        await uow.commit()
    done += len(overdue)

    # Unfillable orders whose SKUs got stock (flagged by the StockChanged consumer).
    async with ctx.uow() as uow:
        retry = await OrderRepository(uow.session).unfillable_to_retry(batch)
        await uow.commit()
    await drive_all(ctx, retry)
    done += len(retry)

    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        pending = await repo.unrestocked_returns(ctx.config.recovery_idle_seconds, batch)
        metrics.UNFILLABLE_ORDERS.set(await repo.count_in(S.UNFILLABLE))
        await uow.commit()
    for record in pending:
        await finish_restock(ctx, record)
    return done + len(pending)
