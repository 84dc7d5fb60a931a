"""Driving an order through the steps that call inventory: route → hold → allocate, and
release on cancel.

Each step first persists what it is about to do (the routed legs with their reservation
keys, status RESERVING / CANCELLING, a transfer about to be asked for), then calls inventory
with request ids derived from those keys, then records the outcome with a compare-and-set on
the status. A crash anywhere leaves an in-flight status behind; the recovery task resumes
it, and because every call is idempotent on its key a resumed step never holds, transfers or
releases twice. A replayed hold answers with its first success even if the hold was given
back since (a crash inside the compensation of a refused hold), so a resumed hold step asks
inventory whether each hold is still active before trusting it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from omni.order.v1 import events_pb2 as ev
from omni.order.v1 import order_pb2 as pb

from libs.errors import Unavailable
from libs.unit_of_work import UnitOfWork
from services.order import metrics
from services.order.adapters import proto
from services.order.adapters.inventory_client import HoldLine, InventoryRefused, StockRefused
from services.order.adapters.repository import OrderRepository, OrderRow
from services.order.domain import routing
from services.order.domain.orders import Address, Payment, routing_plan
from services.order.domain.state_machine import (
    DONE,
    FINAL,
    FulfilmentStatus,
    OrderStatus,
)
from services.order.service_layer.context import DEFAULT_RULES, OrderContext
from services.order.service_layer.stored import stored_new_order

log = logging.getLogger(__name__)
S = OrderStatus


async def order_proto(repo: OrderRepository, order_id: str) -> pb.Order:
    row = await repo.get(order_id)
    assert row is not None
    return proto.order_to_proto(
        row.data, await repo.lines(order_id), await repo.fulfilments_of(order_id)
    )


async def rules_body(repo: OrderRepository, channel_id: str) -> tuple[int, dict[str, Any]]:
    found = await repo.rules(channel_id)
    if found is None:
        return 0, dict(DEFAULT_RULES)
    return int(found["version"]), {**DEFAULT_RULES, **found["body"]}


def domain_rules(version: int, body: dict[str, Any]) -> routing.Rules:
    return routing.Rules(
        version=version,
        same_city_first=bool(body["same_city_first"]),
        location_priority=tuple(body["location_priority"]),
        excluded_location_ids=frozenset(body["excluded_location_ids"]),
        distance_tolerance_meters=int(body["distance_tolerance_meters"]),
    )


async def transition(
    uow: UnitOfWork,
    repo: OrderRepository,
    order_id: str,
    expected: OrderStatus | list[OrderStatus],
    to: OrderStatus,
    note: str = "",
    **values: Any,
) -> bool:
    """Compare-and-set through the domain's transition table (see the repository); the
    metrics count the move once it is committed."""
    moved = await repo.set_status(order_id, expected, to, note, **values)
    if moved:
        uow.after_commit(metrics.TRANSITIONS.labels(to.value).inc)
        if to in FINAL:
            row = await repo.get(order_id)
            assert row is not None
            finished = metrics.ORDERS_FINISHED.labels(
                metrics.channel_kind_label(row["channel_kind"]),
                row["mode"],
                "completed" if to is S.COMPLETED else "cancelled",
            )
            uow.after_commit(finished.inc)
    return moved


async def drive(ctx: OrderContext, order_id: str) -> None:
    """Advance the order as far as it can go without a person (idempotent, lease-guarded)."""
    async with ctx.uow() as uow:
        claimed = await OrderRepository(uow.session).claim(order_id, ctx.config.lease_seconds)
        await uow.commit()
    if claimed is None:
        return  # Someone else is driving it.
    try:
        # Holds made right after this drive routed the order use fresh keys, so their
        # answers can be trusted; a hold step resumed from an earlier drive is checked.
        just_routed = False
        for _ in range(12):
            done = await _step(ctx, order_id, just_routed)
            if done is None:
                break
            just_routed = done == "route"
    except Unavailable:
        # A peer or the database is away: the order keeps its in-flight status and the
        # recovery task resumes it; the caller sees the order as far as it got.
        log.warning("order step postponed", extra={"order_id": order_id}, exc_info=True)
    finally:
        async with ctx.uow() as uow:
            await OrderRepository(uow.session).unlease(order_id)
            await uow.commit()


async def _step(ctx: OrderContext, order_id: str, just_routed: bool) -> str | None:
    """Take the next step of the order; returns which one (None when nothing is to do)."""
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        row = await repo.get(order_id)
        if row is None:
            return None
        lines = await repo.lines(order_id)
        legs = await repo.fulfilments_of(order_id)
    status = row.status
    if status is S.CREATED or (status is S.UNFILLABLE and row["retry_routing"]):
        await _route(ctx, row, lines)
        return "route"
    if status is S.RESERVING:
        await _hold(ctx, row, legs, trust_replays=just_routed)
        return "hold"
    if status is S.PAID:
        await _allocate(ctx, row, legs)
        return "allocate"
    if status is S.CANCELLING:
        await _release(ctx, row, legs)
        return "release"
    return None


async def _route(ctx: OrderContext, row: OrderRow, lines: list[dict[str, Any]]) -> None:
    order = stored_new_order(row, lines)
    plan = routing_plan(order)
    async with ctx.uow() as uow:
        version, body = await rules_body(OrderRepository(uow.session), order.channel_id)
    rules = domain_rules(version, body)
    point: tuple[float, float] | None = None
    city = ""
    address: Address | None = order.address
    if plan.strategy is routing.Strategy.SHIP_TO_CUSTOMER and address is not None:
        city = address.city
        if address.has_coordinates:
            point = (address.latitude, address.longitude)
    accepts_transfers = False
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line["sku_code"]] = wanted.get(line["sku_code"], 0) + line["quantity"]
    try:
        if plan.strategy is not routing.Strategy.SHIP_TO_CUSTOMER:
            store = await ctx.inventory.place(plan.handover_store_id)
            if store is not None:
                city = store.city
                point = (store.latitude, store.longitude)
                accepts_transfers = routing.Capability.TRANSFER in store.capabilities
        candidates = await ctx.inventory.candidates(
            order.stock_channel, wanted, point, need_open_state=plan.same_city_only
        )
    except (InventoryRefused, StockRefused) as refused:
        # Not a passing outage: retrying at once would meet the same answer. The order
        # waits in the unfillable queue with the reason (new stock for its SKUs, e.g. once
        # inventory registered a new SKU, wakes it; its deadline ends it).
        log.warning("routing query refused", extra={"order_id": row.order_id, "why": str(refused)})
        decision = routing.Decision(False, (), (), str(refused), rules.version)
    else:
        decision = routing.route(
            routing.Request(
                strategy=plan.strategy,
                lines=tuple(
                    routing.Line(line["line_id"], line["sku_code"], line["quantity"])
                    for line in lines
                ),
                city=city,
                capability=plan.capability,
                same_city_only=plan.same_city_only,
                handover_store_id=plan.handover_store_id,
                handover_accepts_transfers=accepts_transfers,
            ),
            candidates,
            rules,
        )
    now = datetime.now(UTC)
    attempt = int(row["routing_attempts"]) + 1
    explanation = {
        "rules_version": decision.rules_version,
        "routed": decision.routed,
        "failure_reason": decision.failure_reason,
        "decide_time": now.isoformat().replace("+00:00", "Z"),
        "candidates": [
            {
                "location_id": v.location_id,
                "chosen": v.chosen,
                "reason": v.reason,
                "distance_meters": v.distance_meters,
                "same_city": v.same_city,
                "line_ids": list(v.line_ids),
                "via_transfer": v.via_transfer,
            }
            for v in decision.verdicts
        ],
    }
    by_line = {line["line_id"]: line for line in lines}
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        if decision.routed:
            outcome = "split" if decision.split else "single"
            if any(leg.via_transfer for leg in decision.legs):
                outcome = "transfer"
            metrics.ROUTING_DECISIONS.labels(outcome).inc()
            await repo.delete_planned(row.order_id)
            await repo.add_fulfilments(
                [
                    _planned_leg(
                        row, plan.handover, plan.handover_store_id, attempt, seq, leg, by_line
                    )
                    for seq, leg in enumerate(decision.legs, start=1)
                ]
            )
            moved = await transition(
                uow,
                repo,
                row.order_id,
                [S.CREATED, S.UNFILLABLE],
                S.RESERVING,
                f"routed to {', '.join(leg.location_id for leg in decision.legs)}",
                routing=explanation,
                routing_attempts=attempt,
                retry_routing=False,
            )
        else:
            metrics.ROUTING_DECISIONS.labels("unfillable").inc()
            if row.status is S.UNFILLABLE:
                await repo.update(
                    row.order_id, routing=explanation, routing_attempts=attempt, retry_routing=False
                )
                moved = True
            else:
                deadline = now + timedelta(seconds=int(body["unfillable_timeout_seconds"]))
                moved = await transition(
                    uow,
                    repo,
                    row.order_id,
                    S.CREATED,
                    S.UNFILLABLE,
                    decision.failure_reason,
                    routing=explanation,
                    routing_attempts=attempt,
                    retry_routing=False,
                    unfillable_deadline=deadline,
                )
                if moved:
                    uow.emit(
                        ev.OrderUnfillableEvent(
                            order=await order_proto(repo, row.order_id),
                            reason=decision.failure_reason,
                        ),
                        row.order_id,
                    )
        if moved:
            await uow.commit()


def _planned_leg(
    row: OrderRow,
    handover: str,
    handover_store_id: str,
    attempt: int,
    seq: int,
    leg: routing.Leg,
    by_line: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    order_id = row.order_id
    distance = leg.distance_meters or 0.0
    if leg.via_transfer:
        hint = f"transfer to {handover_store_id}, {distance / 1000:.1f} km"
    elif handover in {"courier", "same_city_rider"}:
        city = (row["address"] or {}).get("city", "")
        hint = (
            f"{'same city' if leg.same_city else 'intercity'} to {city}, {distance / 1000:.1f} km"
        )
    else:
        hint = f"hand over at {handover_store_id}"
    return {
        "fulfilment_id": f"{order_id}-F{seq}",
        "order_id": order_id,
        "seq": seq,
        "location_id": leg.location_id,
        "status": FulfilmentStatus.PLANNED.value,
        "handover": handover,
        "items": [
            {
                "line_id": line_id,
                "sku_code": by_line[line_id]["sku_code"],
                "quantity": by_line[line_id]["quantity"],
            }
            for line_id in leg.line_ids
        ],
        "address": row["address"] if handover in {"courier", "same_city_rider", "guide"} else None,
        "handover_store_id": handover_store_id,
        "via_transfer": leg.via_transfer,
        "transfer_id": "",
        "transfer_requested": False,
        # A new key per routing attempt: a released hold keeps its key at inventory.
        "reservation_key": f"{order_id}.{attempt}.{seq}",
        "distance_meters": distance,
        "route_hint": hint,
        # The guide who sold it brings it, unless someone else is assigned when it leaves.
        "assignee": row["selling_guide_staff_id"] if handover == "guide" else "",
    }


def hold_lines(leg: dict[str, Any], location_id: str | None = None) -> list[HoldLine]:
    return [
        HoldLine(i["line_id"], i["sku_code"], location_id or leg["location_id"], i["quantity"])
        for i in leg["items"]
    ]


async def _hold(
    ctx: OrderContext, row: OrderRow, legs: list[dict[str, Any]], *, trust_replays: bool
) -> None:
    """Hold every planned leg at inventory; a refusal gives back what was held and routes
    again. Unless the legs were routed in this same drive, a hold may be a replay of one
    given back before a crash: each is checked to still be active (else: compensate)."""
    planned = [f for f in legs if f["status"] == FulfilmentStatus.PLANNED.value]
    try:
        for leg in planned:
            await ctx.inventory.reserve(
                leg["reservation_key"], row["stock_channel"], hold_lines(leg)
            )
        if not trust_replays:
            for leg in planned:
                if not await ctx.inventory.hold_is_active(leg["reservation_key"]):
                    raise StockRefused(
                        f"hold {leg['reservation_key']} was given back before a restart"
                    )
    except StockRefused as refused:
        # Compensate: give back the legs already held, then route again (stock moved since
        # routing) or park the order when it keeps happening.
        metrics.HOLDS_REFUSED.inc()
        for leg in planned:
            await ctx.inventory.release(leg["reservation_key"], "hold refused on another leg")
        async with ctx.uow() as uow:
            repo = OrderRepository(uow.session)
            await repo.delete_planned(row.order_id)
            if int(row["routing_attempts"]) >= ctx.config.max_routing_attempts:
                async with ctx.uow() as rules_uow:
                    _, body = await rules_body(
                        OrderRepository(rules_uow.session), row["channel_id"]
                    )
                deadline = datetime.now(UTC) + timedelta(
                    seconds=int(body["unfillable_timeout_seconds"])
                )
                await transition(
                    uow,
                    repo,
                    row.order_id,
                    S.RESERVING,
                    S.UNFILLABLE,
                    f"hold refused: {refused}",
                    unfillable_deadline=deadline,
                )
            else:
                await transition(
                    uow, repo, row.order_id, S.RESERVING, S.CREATED, f"hold refused: {refused}"
                )
            await uow.commit()
        return
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        # Lock the row: a payment may have arrived while the holds were being made.
        current = await repo.get(row.order_id, lock=True)
        if current is None or current.status is not S.RESERVING:
            return  # Cancelled meanwhile: the next step releases.
        paid = Payment(current["payment"]) is not Payment.AWAITING
        _, body = await rules_body(repo, row["channel_id"])
        if paid:
            await transition(uow, repo, row.order_id, S.RESERVING, S.PAID, "stock held, paid")
        else:
            deadline = datetime.now(UTC) + timedelta(seconds=int(body["payment_timeout_seconds"]))
            await transition(
                uow,
                repo,
                row.order_id,
                S.RESERVING,
                S.RESERVED,
                "stock held, awaiting payment",
                pay_deadline=deadline,
            )
        order = await order_proto(repo, row.order_id)
        uow.emit(ev.OrderReservedEvent(order=order), row.order_id)
        if paid:
            uow.emit(
                ev.OrderPaidEvent(order=order, pay_time=proto.ts(datetime.now(UTC))), row.order_id
            )
        await uow.commit()


async def _allocate(ctx: OrderContext, row: OrderRow, legs: list[dict[str, Any]]) -> None:
    planned = [f for f in legs if f["status"] == FulfilmentStatus.PLANNED.value]
    transfers: dict[str, str] = {}
    store_sale = row["mode"] == "store_sale"
    for leg in planned:
        if leg["via_transfer"]:
            try:
                transfers[leg["fulfilment_id"]] = await _request_transfer(ctx, row, leg)
            except StockRefused as refused:
                # Compensate: the order cannot be fulfilled as routed; release its holds.
                async with ctx.uow() as uow:
                    repo = OrderRepository(uow.session)
                    await transition(
                        uow,
                        repo,
                        row.order_id,
                        S.PAID,
                        S.CANCELLING,
                        f"transfer refused: {refused}",
                        cancel_reason="allocation_failed",
                    )
                    await uow.commit()
                return
        if store_sale:
            # Carried out at the counter: the goods leave now.
            await ctx.inventory.confirm(leg["reservation_key"])
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        current = await repo.get(row.order_id, lock=True)
        if current is None or current.status is not S.PAID:
            return
        for leg in planned:
            await repo.update_fulfilment(
                leg["fulfilment_id"],
                status=(
                    FulfilmentStatus.DELIVERED if store_sale else FulfilmentStatus.PENDING
                ).value,
                transfer_id=transfers.get(leg["fulfilment_id"], ""),
            )
        await transition(
            uow, repo, row.order_id, S.PAID, S.ALLOCATED, f"{len(planned)} fulfilment order(s)"
        )
        fulfilments = await repo.fulfilments_of(row.order_id)
        uow.emit(
            ev.OrderAllocatedEvent(
                order=await order_proto(repo, row.order_id),
                fulfilment_orders=[proto.fulfilment_to_proto(f) for f in fulfilments],
            ),
            row.order_id,
        )
        if store_sale:
            for f in fulfilments:
                uow.emit(
                    ev.FulfilmentDeliveredEvent(fulfilment_order=proto.fulfilment_to_proto(f)),
                    row.order_id,
                )
            await complete(uow, repo, row.order_id, S.ALLOCATED, "carried out at the counter")
        await uow.commit()


async def _request_transfer(ctx: OrderContext, row: OrderRow, leg: dict[str, Any]) -> str:
    """Ask inventory to move the leg's goods to the handover store. That it was asked is
    committed first and the transfer id right after, so a cancel can always call it off."""
    if leg["transfer_id"]:
        return str(leg["transfer_id"])
    if not leg["transfer_requested"]:
        async with ctx.uow() as uow:
            await OrderRepository(uow.session).update_fulfilment(
                leg["fulfilment_id"], transfer_requested=True
            )
            await uow.commit()
    transfer_id = await _transfer_call(ctx, row, leg)
    async with ctx.uow() as uow:
        await OrderRepository(uow.session).update_fulfilment(
            leg["fulfilment_id"], transfer_id=transfer_id
        )
        await uow.commit()
    return transfer_id


async def _transfer_call(ctx: OrderContext, row: OrderRow, leg: dict[str, Any]) -> str:
    wanted: dict[str, int] = {}
    for item in leg["items"]:
        wanted[item["sku_code"]] = wanted.get(item["sku_code"], 0) + item["quantity"]
    return await ctx.inventory.request_transfer(
        f"transfer:{leg['reservation_key']}",
        leg["location_id"],
        leg["handover_store_id"],
        wanted,
        f"order {row.order_id} ({leg['fulfilment_id']})",
    )


async def complete(
    uow: UnitOfWork, repo: OrderRepository, order_id: str, expected: OrderStatus, note: str
) -> None:
    await transition(uow, repo, order_id, expected, S.COMPLETED, note)
    now = datetime.now(UTC)
    uow.emit(
        ev.OrderCompletedEvent(
            order=await order_proto(repo, order_id), complete_time=proto.ts(now)
        ),
        order_id,
    )


async def _release(ctx: OrderContext, row: OrderRow, legs: list[dict[str, Any]]) -> None:
    """Compensate everything the order still has at inventory: call off transfers that
    have not shipped, give back the holds."""
    reason = row["cancel_reason"] or "cancelled"
    notes: list[str] = []
    for leg in legs:
        status = FulfilmentStatus(leg["status"])
        if status in {FulfilmentStatus.PLANNED, FulfilmentStatus.PENDING}:
            note = await _cancel_transfer(ctx, row, leg, reason)
            if note:
                notes.append(note)
        if status not in DONE:
            await ctx.inventory.release(leg["reservation_key"], reason)
    async with ctx.uow() as uow:
        repo = OrderRepository(uow.session)
        await repo.update_fulfilments_of(row.order_id, status=FulfilmentStatus.CANCELLED.value)
        for note in notes:
            await repo.record(row.order_id, S.CANCELLING, S.CANCELLING, note)
        if await transition(
            uow, repo, row.order_id, S.CANCELLING, S.CANCELLED, f"released: {reason}"
        ):
            uow.after_commit(metrics.CANCELLATIONS.labels(metrics.cancel_reason_label(reason)).inc)
            uow.emit(
                ev.OrderCancelledEvent(
                    order=await order_proto(repo, row.order_id),
                    reason=reason,
                    cancel_time=proto.ts(datetime.now(UTC)),
                ),
                row.order_id,
            )
            await uow.commit()


async def _cancel_transfer(
    ctx: OrderContext, row: OrderRow, leg: dict[str, Any], reason: str
) -> str:
    """Call off the leg's transfer if one was asked for and has not shipped; returns what
    happened, for the order's history."""
    if not leg["via_transfer"]:
        return ""
    transfer_id = str(leg["transfer_id"])
    if not transfer_id:
        if not leg["transfer_requested"]:
            return ""
        # Asked for, but the answer was lost in a crash: the same request id returns the
        # same transfer (or makes it now, to be called off at once).
        try:
            transfer_id = await _transfer_call(ctx, row, leg)
        except StockRefused:
            return ""
    cancelled = await ctx.inventory.cancel_transfer(
        f"cancel-transfer:{transfer_id}", transfer_id, f"order {row.order_id}: {reason}"
    )
    if cancelled:
        return f"transfer {transfer_id} cancelled"
    return f"transfer {transfer_id} had already shipped; not cancelled"
