"""Order use cases: capture, pay, cancel, fulfilment steps, returns, rules, recovery.

Each reads as its business steps: load the order, call inventory where the step needs it,
apply to the aggregate (which enforces the order's life and records the events), save.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc

from libs.errors import AlreadyExists, InvalidArgument, NotFound, Validator
from libs.idempotency import fingerprint, run_idempotent_on, validate_request_id
from services.order import metrics
from services.order.adapters import order_store, proto
from services.order.domain import orders as rules
from services.order.domain.order import Order, OrderReturn, ReturnRequestLine
from services.order.domain.orders import NewOrder, Payment
from services.order.domain.routing import Capability
from services.order.domain.state_machine import IN_FLIGHT, LEFT_STOCK, OrderStatus, Step
from services.order.service_layer import workflow
from services.order.service_layer.context import DEFAULT_RULES, OrderContext

log = logging.getLogger(__name__)
S = OrderStatus


def now() -> datetime:
    return datetime.now(UTC)


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


async def capture(ctx: OrderContext, request: svc.CaptureOrderRequest) -> Order:
    """A channel order, once per channel order id: checked, inserted (with the first-fit
    hold it is about to ask for), held, and — paid and held whole at one location —
    allocated, in two statements shared with concurrent captures and one inventory call.
    Anything else (a split, a transfer, no stock) is driven on by the workflow. The same
    channel order again is the same order (a re-sent paid one pays it); other content under
    its id is ALREADY_EXISTS naming what differs."""
    validate_request_id(request.request_id)
    new = proto.new_order_from_proto(request)
    rules.validate(new)
    categories = await check_references(ctx, new)
    when = now()
    order = Order.capture(Order.new_id(), new, categories, when)
    intent = await workflow.plan_first_fit(ctx, order)
    if intent is not None:
        order.start_first_fit(
            intent, f"holding at the first of {len(intent['candidates'])} ranked location(s)", when
        )
    inserted = await ctx.batches.insert(
        order, request.request_id, fingerprint(request), ctx.config.lease_seconds
    )
    if inserted.existing is not None:
        return await _captured_before(ctx, new, inserted.existing)
    metrics.ORDERS_CAPTURED.labels(
        metrics.channel_kind_label(order.channel_kind), order.mode.value
    ).inc()
    if intent is not None:
        await workflow.first_fit(ctx, order)
    if order.lease_released:
        return order
    await workflow.drive(ctx, order.order_id, leased=True)
    return await get_order(ctx, order.order_id)


async def _captured_before(ctx: OrderContext, new: NewOrder, existing: Order) -> Order:
    if existing.content_hash != new.fingerprint():
        diff = rules.differences(new, existing.as_new_order())
        metrics.DUPLICATE_CAPTURES.labels("refused").inc()
        raise AlreadyExists(
            f"channel order {new.channel_order_id} of {new.channel_id} was already captured "
            f"as {existing.order_id} with different content ({', '.join(diff) or 'content'} "
            "differ)"
        )
    metrics.DUPLICATE_CAPTURES.labels("same").inc()
    await resent_payment(ctx, existing.order_id, new.payment)
    await workflow.drive(ctx, existing.order_id)
    return await get_order(ctx, existing.order_id)


async def resent_payment(ctx: OrderContext, order_id: str, payment: Payment | None) -> None:
    """A channel re-sent an order it had sent unpaid, now paid (the common marketplace
    case): the payment is applied as PayOrder would (once), so the order does not expire
    unpaid. Re-sent without payment, or paid already, it changes nothing."""
    if payment is None or payment is Payment.AWAITING:
        return
    async with ctx.uow() as uow:
        order = await uow.get(order_id)
        if order.pay(payment, now()):
            await uow.save(order)
            await uow.commit()


# --- reading ----------------------------------------------------------------------------------


async def get_order(ctx: OrderContext, order_id: str, *, details: bool = False) -> Order:
    async with ctx.pg.connection() as conn:
        found = await order_store.load(conn, order_id, details=details)
    if found is None:
        raise NotFound(f"order {order_id} not found", field="order_id")
    return found


async def list_orders(ctx: OrderContext, where: order_store.OrderFilter, limit: int) -> list[Order]:
    async with ctx.pg.connection() as conn:
        return await order_store.list_orders(conn, where, limit)


# --- payment and cancel ------------------------------------------------------------------------


async def pay(ctx: OrderContext, request: svc.PayOrderRequest) -> Order:
    """Payment arrived: a reserved order becomes paid and is allocated; one still being
    routed or held takes the payment with it. The same payment twice changes nothing; an
    order past payment (cancelled) is FAILED_PRECONDITION."""
    payment = proto.PAYMENTS.get(request.payment_state)
    if payment is None or payment is Payment.AWAITING:
        raise InvalidArgument.field("payment_state", "must be PAID_ONLINE or PAID_AT_POS")
    async with ctx.uow() as uow:

        async def handle() -> svc.PayOrderResponse:
            order = await uow.get(request.order_id)
            if order.pay(payment, now()):
                await uow.save(order)
            return svc.PayOrderResponse()

        await run_idempotent_on(uow.conn, "PayOrder", request, svc.PayOrderResponse, handle)
        await uow.commit()
    await workflow.drive(ctx, request.order_id)
    return await get_order(ctx, request.order_id)


async def cancel(ctx: OrderContext, request: svc.CancelOrderRequest) -> Order:
    """Until any goods left: nothing held → cancelled at once; otherwise the holds are given
    back (and transfers called off) by the workflow."""
    reason = request.reason or "customer"
    async with ctx.uow() as uow:

        async def handle() -> svc.CancelOrderResponse:
            order = await uow.get(request.order_id)
            before = order.status
            order.request_cancel(reason, now())
            if order.status is not before:
                await uow.save(order)
            return svc.CancelOrderResponse()

        await run_idempotent_on(uow.conn, "CancelOrder", request, svc.CancelOrderResponse, handle)
        await uow.commit()
    await workflow.drive(ctx, request.order_id)
    return await get_order(ctx, request.order_id)


async def hold_expired(uow: Any, reservation_key: str) -> None:
    """Inventory ended one of our holds on its own (its safety-net expiry). An unpaid order
    is cancelled (its other holds released by the worker); for a paid order the fact is
    recorded in its history for operations — the goods may still be there. ``uow``: the
    order unit of work of the consumer's transaction."""
    order_id = await order_store.order_of_hold(uow.conn, reservation_key)
    if order_id is None:
        return  # A hold of an earlier routing attempt, already given back.
    order = await uow.get(order_id)
    status = order.status
    if order.hold_expired(reservation_key, now()):
        metrics.HOLDS_EXPIRED.labels(status.value).inc()
        await uow.save(order)


# --- fulfilment steps ---------------------------------------------------------------------------


async def fulfilment_step(
    ctx: OrderContext, method: str, request: Any, step: Step, assignee: str = ""
) -> tuple[pb.FulfilmentOrder, str]:
    """Move one fulfilment order a step; the inventory calls made on the way are idempotent
    on the fulfilment's keys, so a retried request is safe. The order row is locked first
    (as cancel does), so a cancel and a shipment cannot cross. Returns the fulfilment order
    and its order's id."""
    if len(assignee) > rules.MAX_ID_LENGTH:
        raise InvalidArgument.field("assignee", f"must be at most {rules.MAX_ID_LENGTH} characters")
    fulfilment_id: str = request.fulfilment_id
    async with ctx.uow() as uow:
        order_id = await order_store.order_of_fulfilment(uow.conn, fulfilment_id)
        if order_id is None:
            raise NotFound(f"fulfilment order {fulfilment_id} not found", field="fulfilment_id")

        async def handle() -> svc.ShipFulfilmentResponse:
            order = await uow.get(order_id)
            f, to = order.next_step(fulfilment_id, step)
            current = f.status
            inv = ctx.inventory
            reservation_key = ""
            if to.name == "TRANSFER_IN_TRANSIT":
                # The hold at the source must end for the goods to leave on the transfer;
                # the units then travel in transit, promised to no one.
                await inv.release(f.reservation_key, "goods leave on a transfer")
                await inv.ship_transfer(f"ship:{f.transfer_id}", f.transfer_id)
            elif current.name == "TRANSFER_IN_TRANSIT" and to.name == "READY_FOR_PICKUP":
                await inv.receive_transfer(f"receive:{f.transfer_id}", f.transfer_id)
                reservation_key = f"{f.reservation_key}.store"
                await inv.reserve(
                    reservation_key,
                    order.stock_channel,
                    workflow.hold_lines(f, f.handover_store_id),
                )
            if to in LEFT_STOCK and current not in LEFT_STOCK:
                await inv.confirm(reservation_key or f.reservation_key)
            moved = order.fulfilment_moved(
                fulfilment_id, to, now(), assignee=assignee, reservation_key=reservation_key
            )
            await uow.save(order)
            return svc.ShipFulfilmentResponse(fulfilment_order=proto.fulfilment_to_proto(moved))

        done = await run_idempotent_on(
            uow.conn, method, request, svc.ShipFulfilmentResponse, handle
        )
        await uow.commit()
    return done.fulfilment_order, order_id


# --- returns -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnLine:
    line_id: str
    quantity: int
    resaleable: bool | None


async def receive_return(
    ctx: OrderContext, request: svc.ReceiveReturnRequest, lines: Sequence[ReturnLine]
) -> svc.ReceiveReturnResponse:
    """Goods back at any store or by post: refund per line (domain.orders.refund_for), the
    event for member and distribution; restocking at the receiving location follows the
    commit (finish_restock), resumed by the recovery task if the process stops."""
    location = request.receiving_location_id
    v = Validator()
    v.check(bool(location), "receiving_location_id", "is required")
    v.check(
        len(location) <= rules.MAX_ID_LENGTH,
        "receiving_location_id",
        f"must be at most {rules.MAX_ID_LENGTH} characters",
    )
    v.check(bool(lines), "lines", "must have at least one line")
    for i, line in enumerate(lines):
        v.check(line.quantity > 0, f"lines[{i}].quantity", "must be greater than 0")
        v.check(line.resaleable is not None, f"lines[{i}].condition", "is required")
    v.check(len({line.line_id for line in lines}) == len(lines), "lines", "each line at most once")
    v.raise_if_any()
    received: list[OrderReturn] = []
    async with ctx.uow() as uow:

        async def handle() -> svc.ReceiveReturnResponse:
            order = await uow.get(request.order_id)
            # The checks that need the order first, so a bad line is INVALID_ARGUMENT even
            # when the location is unknown too.
            record = order.receive_return(
                location,
                request.by_post,
                [ReturnRequestLine(x.line_id, x.quantity, x.resaleable) for x in lines],
                now(),
            )
            if await ctx.inventory.place(location) is None:
                raise InvalidArgument.field(
                    "receiving_location_id", f"unknown or inactive location {location}"
                )
            await uow.save(order)
            uow.after_commit(lambda: _count_return(record))
            received.append(record)
            return svc.ReceiveReturnResponse(order_return=proto.return_to_proto(record))

        done = await run_idempotent_on(
            uow.conn, "ReceiveReturn", request, svc.ReceiveReturnResponse, handle
        )
        await uow.commit()
    for record in received:
        await finish_restock(ctx, record)
    return done


def _count_return(record: OrderReturn) -> None:
    for line in record.lines:
        condition = "resaleable" if line["restock"] else "damaged"
        metrics.RETURNED_UNITS.labels(condition).inc(line["quantity"])
    metrics.REFUNDED_MINOR.inc(record.refund_total_minor)


async def finish_restock(ctx: OrderContext, record: OrderReturn) -> None:
    for line in record.lines:
        if line["restock"]:
            await ctx.inventory.restock_return(
                f"{record.return_id}:{line['line_id']}",
                record.receiving_location_id,
                line["sku_code"],
                line["quantity"],
                record.order_id,
            )
    async with ctx.pg.connection() as conn:
        await order_store.mark_restocked(conn, record.return_id)


# --- routing rules -----------------------------------------------------------------------------


MAX_RULE_LOCATIONS = 1000


def check_rules(rules_pb: pb.RoutingRules) -> dict[str, Any]:
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
    for name in (
        "payment_timeout_seconds",
        "unfillable_timeout_seconds",
        "distance_tolerance_meters",
    ):
        v.check(getattr(rules_pb, name) >= 0, f"rules.{name}", "must not be negative")
    v.check(
        len(set(rules_pb.location_priority)) == len(rules_pb.location_priority),
        "rules.location_priority",
        "each location at most once",
    )
    v.raise_if_any()
    return {
        "same_city_first": rules_pb.same_city_first,
        "location_priority": list(rules_pb.location_priority),
        "excluded_location_ids": list(rules_pb.excluded_location_ids),
        "payment_timeout_seconds": rules_pb.payment_timeout_seconds
        or DEFAULT_RULES["payment_timeout_seconds"],
        "unfillable_timeout_seconds": rules_pb.unfillable_timeout_seconds
        or DEFAULT_RULES["unfillable_timeout_seconds"],
        "distance_tolerance_meters": rules_pb.distance_tolerance_meters,
    }


async def set_rules(
    ctx: OrderContext, request: svc.SetRoutingRulesRequest
) -> svc.SetRoutingRulesResponse:
    body = check_rules(request.rules)
    async with ctx.uow() as uow:

        async def handle() -> svc.SetRoutingRulesResponse:
            row = await order_store.add_rules(uow.conn, request.rules.channel_id, body)
            return svc.SetRoutingRulesResponse(rules=proto.rules_to_proto(row))

        done = await run_idempotent_on(
            uow.conn, "SetRoutingRules", request, svc.SetRoutingRulesResponse, handle
        )
        await uow.commit()
    ctx.rules.forget(request.rules.channel_id)
    return done


async def get_rules(ctx: OrderContext, channel_id: str, version: int) -> dict[str, Any]:
    if not channel_id:
        raise InvalidArgument.field("channel_id", "is required")
    async with ctx.pg.connection() as conn:
        row = await order_store.rules(conn, channel_id, version)
    if row is None:
        raise NotFound(
            f"no routing rules for channel {channel_id}"
            + (f" version {version}" if version else "")
        )
    return row


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


async def _cancel_due(
    ctx: OrderContext, status: OrderStatus, column: str, reason: str, at: datetime, batch: int
) -> list[str]:
    async with ctx.uow() as uow:
        due = await order_store.expired(uow.conn, status, column, at, batch)
        for order_id in due:
            order = await uow.get(order_id, lock=False)
            order.begin_cancel(reason, at)
            await uow.save(order)
        await uow.commit()
    return due


async def recover_once(ctx: OrderContext, at: datetime, batch: int = 50) -> int:
    """One round of the background task (every replica runs it; rows are shared out with
    SKIP LOCKED and each order is driven under its lease). Returns the work done."""
    done = 0
    async with ctx.uow() as uow:
        stuck = await order_store.due_for_work(
            uow.conn,
            sorted(IN_FLIGHT, key=lambda s: s.value),
            ctx.config.recovery_idle_seconds,
            batch,
        )
        await uow.commit()
    metrics.RECOVERED.inc(len(stuck))
    await drive_all(ctx, stuck)
    done += len(stuck)

    # Unpaid orders whose time ran out: release their stock.
    unpaid = await _cancel_due(ctx, S.RESERVED, "pay_deadline", "unpaid_expired", at, batch)
    await drive_all(ctx, unpaid)
    done += len(unpaid)

    # Unfillable orders past their deadline are cancelled (they hold nothing).
    overdue = await _cancel_due(
        ctx, S.UNFILLABLE, "unfillable_deadline", "unfillable_deadline", at, batch
    )
    done += len(overdue)

    # Unfillable orders whose SKUs got stock (flagged by the StockChanged consumer).
    async with ctx.uow() as uow:
        retry = await order_store.unfillable_to_retry(uow.conn, batch)
        await uow.commit()
    await drive_all(ctx, retry)
    done += len(retry)

    async with ctx.uow() as uow:
        pending = await order_store.unrestocked_returns(
            uow.conn, ctx.config.recovery_idle_seconds, batch
        )
        metrics.UNFILLABLE_ORDERS.set(await order_store.count_in(uow.conn, S.UNFILLABLE))
        await uow.commit()
    for record in pending:
        await finish_restock(ctx, record)
    return done + len(pending)
