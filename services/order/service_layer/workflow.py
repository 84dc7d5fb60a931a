"""Driving an order through the steps that call inventory: hold (first fit, or route →
hold), allocate, and release on cancel. Each step is "load, call inventory, apply to the
aggregate, save".

Each step first persists what it is about to do (the first-fit hold it will ask for; the
routed legs with their reservation keys, status RESERVING / CANCELLING; a transfer about to
be asked for), then calls inventory with request ids derived from those keys, then applies
the answer to the order and saves it — optimistically: if someone changed the order
meanwhile (a cancel), nothing is written and the next step starts from what they left. A
crash anywhere leaves an in-flight status behind; the recovery task resumes it, and because
every call is idempotent on its key a resumed step never holds, transfers or releases
twice. A replayed hold answers with its first success even if the hold was given back since
(a crash inside the compensation of a refused hold), so a resumed hold step asks inventory
whether each hold is still active before trusting it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.errors import Unavailable
from services.order import metrics
from services.order.adapters import order_store
from services.order.adapters.inventory_client import (
    FirstFitAnswer,
    FirstFitHold,
    HoldLine,
    InventoryRefused,
    StockRefused,
)
from services.order.adapters.location_directory import Directory
from services.order.domain import routing
from services.order.domain.order import Fulfilment, Order, PlannedLeg
from services.order.domain.orders import routing_plan
from services.order.domain.state_machine import (
    DONE,
    IN_FLIGHT,
    FulfilmentStatus,
    OrderStatus,
)
from services.order.service_layer.context import OrderContext

log = logging.getLogger(__name__)
S = OrderStatus
F = FulfilmentStatus

# The most locations a first-fit hold tries (beyond them the order is routed in full).
MAX_FIRST_FIT_CANDIDATES = 20
# A stale ranking (locations changed meanwhile) is made again at most this often per step.
MAX_STALE_RETRIES = 3


def now() -> datetime:
    return datetime.now(UTC)


def at_rest(order: Order) -> bool:
    return order.status not in IN_FLIGHT


async def _save(ctx: OrderContext, order: Order) -> bool:
    """Save the step's changes (False: the order changed meanwhile; nothing written). The
    driver's lease goes with the save that leaves the order at rest."""
    release = at_rest(order)
    saved = await ctx.batches.save(order, release_lease=release)
    order.lease_released = saved and release
    return saved


def explanation(decision: routing.Decision, when: datetime) -> dict[str, Any]:
    return {
        "rules_version": decision.rules_version,
        "routed": decision.routed,
        "failure_reason": decision.failure_reason,
        "decide_time": when.isoformat().replace("+00:00", "Z"),
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


# --- driving ------------------------------------------------------------------------------------


async def drive(ctx: OrderContext, order_id: str, *, leased: bool = False) -> None:
    """Advance the order as far as it can go without a person (idempotent, lease-guarded;
    ``leased``: the caller holds the lease already)."""
    if not leased:
        async with ctx.pg.connection() as conn:
            if not await order_store.claim(conn, order_id, ctx.config.lease_seconds):
                return  # Someone else is driving it.
    released = False
    try:
        # Holds made right after this drive routed the order use fresh keys, so their
        # answers can be trusted; a hold step resumed from an earlier drive is checked.
        just_routed = False
        for _ in range(12):
            async with ctx.pg.connection() as conn:
                order = await order_store.load(conn, order_id)
            if order is None:
                return
            if at_rest(order) and not (order.status is S.UNFILLABLE and order.retry_routing):
                break
            step = await _step(ctx, order, just_routed)
            released = order.lease_released
            if released:
                break
            just_routed = step == "route"
    except Unavailable:
        # A peer or the database is away: the order keeps its in-flight status and the
        # recovery task resumes it; the caller sees the order as far as it got.
        log.warning("order step postponed", extra={"order_id": order_id}, exc_info=True)
    finally:
        if not released:
            async with ctx.pg.connection() as conn:
                await order_store.unlease(conn, order_id)


async def _step(ctx: OrderContext, order: Order, just_routed: bool) -> str:
    """Take the next step of the order; returns which one."""
    status = order.status
    if status is S.CREATED or (status is S.UNFILLABLE and order.retry_routing):
        await route(ctx, order)
        return "route"
    if status is S.RESERVING and order.hold_intent is not None:
        await first_fit(ctx, order)
        return "first_fit"
    if status is S.RESERVING:
        await hold(ctx, order, trust_replays=just_routed)
        return "hold"
    if status is S.PAID:
        await allocate(ctx, order)
        return "allocate"
    if status is S.CANCELLING:
        await release(ctx, order)
        return "release"
    return "busy"


# --- first fit: the whole order held at the best-ranked location that has all of it ---------


async def plan_first_fit(
    ctx: OrderContext, order: Order, newer_than: int = -1
) -> dict[str, Any] | None:
    """Rank the locations that could take the whole order directly (no stock needed for
    that): the first-fit hold to ask for, or None when there is none to try (the order is
    routed in full instead)."""
    plan = routing_plan(order.as_new_order())
    rules = (await ctx.rules.get(order.channel_id)).routing
    directory = await ctx.inventory.directory.get(order.stock_channel, newer_than=newer_than)
    request, point = _routing_request(order, plan, directory)
    if request is None:
        return None
    places = [
        routing.Place(
            site.location_id,
            site.city,
            site.capabilities,
            None
            if point is None
            else routing.haversine_meters(point[0], point[1], site.latitude, site.longitude),
        )
        for site in directory.sites.values()
    ]
    ranking = routing.rank_places(request, places, rules)
    candidates = [e.candidate.location_id for e in ranking.direct[:MAX_FIRST_FIT_CANDIDATES]]
    if not candidates:
        return None
    return {
        "key": f"{order.order_id}.0.1",
        "candidates": candidates,
        "capability": plan.capability.value
        if plan.strategy is routing.Strategy.SHIP_TO_CUSTOMER
        else None,
        "open_now": plan.same_city_only,
        "confirm": order.is_store_sale,
        "locations_version": directory.version,
        "handover": plan.handover,
        "handover_store_id": plan.handover_store_id,
        "city": request.city,
        "rules_version": rules.version,
        "ranking": routing.ranking_to_json(ranking),
        # Refused, it leaves nothing to route in full (see routing.first_fit_is_conclusive).
        "conclusive": routing.first_fit_is_conclusive(request, ranking, len(candidates)),
    }


def _routing_request(
    order: Order, plan: Any, directory: Directory
) -> tuple[routing.Request | None, tuple[float, float] | None]:
    point: tuple[float, float] | None = None
    city = ""
    if plan.strategy is routing.Strategy.SHIP_TO_CUSTOMER:
        if order.address is not None:
            city = order.address.city
            if order.address.has_coordinates:
                point = (order.address.latitude, order.address.longitude)
        accepts = False
    else:
        store = directory.sites.get(plan.handover_store_id)
        if store is None:
            return None, None  # Not a location of this channel (routed in full: it says why).
        city = store.city
        point = (store.latitude, store.longitude)
        accepts = routing.Capability.TRANSFER in store.capabilities
    request = routing.Request(
        strategy=plan.strategy,
        lines=tuple(routing.Line(x.line_id, x.sku_code, x.quantity) for x in order.lines),
        city=city,
        capability=plan.capability,
        same_city_only=plan.same_city_only,
        handover_store_id=plan.handover_store_id,
        handover_accepts_transfers=accepts,
    )
    return request, point


async def first_fit(ctx: OrderContext, order: Order) -> None:
    """Ask inventory for the hold the order notes (the same question after a restart), then
    apply the answer: held → the route, paid orders allocated at once; refused → routed in
    full; stale → ranked again from fresh locations and asked again."""
    intent = order.hold_intent
    assert intent is not None
    for _ in range(MAX_STALE_RETRIES + 1):
        answer = await ctx.inventory.hold_first_fit(_first_fit_hold(order, intent))
        if not answer.stale:
            break
        fresh = await plan_first_fit(ctx, order, newer_than=int(intent["locations_version"]))
        if fresh is None:
            order.first_fit_refused("no location to try any more", now())
            await _save(ctx, order)
            return
        order.replan_first_fit(fresh)
        intent = fresh
        if not await ctx.batches.save(order):
            return  # Changed meanwhile (a cancel): the next step sees it.
    else:
        answer = FirstFitAnswer(reason="the locations kept changing")
    when = now()
    ranking = routing.ranking_from_json(intent["ranking"])
    request = routing.Request(
        strategy=routing.Strategy.SHIP_TO_CUSTOMER,
        lines=tuple(routing.Line(x.line_id, x.sku_code, x.quantity) for x in order.lines),
        city=intent["city"],
    )
    rules = routing.Rules(version=int(intent["rules_version"]))
    if not answer.held and intent.get("conclusive") and not answer.stale:
        # Every eligible location was tried for this one line: unfillable, no more queries.
        refusal = routing.first_fit_refusal(request, ranking, rules, answer.skipped)
        body = (await ctx.rules.get(order.channel_id)).body
        order.first_fit_refused(answer.reason, when)
        order.unroutable(
            explanation(refusal, when),
            1,
            refusal.failure_reason,
            when + timedelta(seconds=int(body["unfillable_timeout_seconds"])),
            when,
        )
        if await _save(ctx, order):
            metrics.ROUTING_DECISIONS.labels("unfillable").inc()
        return
    if not answer.held:
        order.first_fit_refused(answer.reason, when)
        await _save(ctx, order)
        return
    metrics.ROUTING_DECISIONS.labels("single").inc()
    decision = routing.first_fit_decision(
        request, ranking, rules, answer.location_id, answer.skipped
    )
    (leg,) = decision.legs
    order.first_fit_held(
        PlannedLeg(leg.location_id, leg.line_ids, False, leg.distance_meters, leg.same_city),
        intent["handover"],
        intent["handover_store_id"],
        intent["key"],
        explanation(decision, when),
        when,
    )
    body = (await ctx.rules.get(order.channel_id)).body
    order.held(when + timedelta(seconds=int(body["payment_timeout_seconds"])), when)
    if order.paid:
        # Held whole at one location, nothing to transfer: allocated in the same save (a
        # sale at the counter was confirmed with the hold and completes).
        order.allocate(when)
    await _save(ctx, order)


def _first_fit_hold(order: Order, intent: dict[str, Any]) -> FirstFitHold:
    return FirstFitHold(
        key=intent["key"],
        channel=order.stock_channel,
        lines=tuple((x.line_id, x.sku_code, x.quantity) for x in order.lines),
        candidates=tuple(intent["candidates"]),
        capability=routing.Capability(intent["capability"]) if intent["capability"] else None,
        require_open_now=bool(intent["open_now"]),
        confirm=bool(intent["confirm"]),
        locations_version=int(intent["locations_version"]),
    )


# --- full routing: split, transfers, the unfillable queue ------------------------------------


async def route(ctx: OrderContext, order: Order) -> None:
    plan = routing_plan(order.as_new_order())
    channel_rules = await ctx.rules.get(order.channel_id)
    rules = channel_rules.routing
    point: tuple[float, float] | None = None
    city = ""
    address = order.address
    if plan.strategy is routing.Strategy.SHIP_TO_CUSTOMER and address is not None:
        city = address.city
        if address.has_coordinates:
            point = (address.latitude, address.longitude)
    accepts_transfers = False
    try:
        if plan.strategy is not routing.Strategy.SHIP_TO_CUSTOMER:
            store = await ctx.inventory.place(plan.handover_store_id)
            if store is not None:
                city = store.city
                point = (store.latitude, store.longitude)
                accepts_transfers = routing.Capability.TRANSFER in store.capabilities
        candidates = await ctx.inventory.candidates(
            order.stock_channel, order.wanted(), point, need_open_state=plan.same_city_only
        )
    except (InventoryRefused, StockRefused) as refused:
        # Not a passing outage: retrying at once would meet the same answer. The order
        # waits in the unfillable queue with the reason (new stock for its SKUs, e.g. once
        # inventory registered a new SKU, wakes it; its deadline ends it).
        log.warning(
            "routing query refused", extra={"order_id": order.order_id, "why": str(refused)}
        )
        decision = routing.Decision(False, (), (), str(refused), rules.version)
    else:
        decision = routing.route(
            routing.Request(
                strategy=plan.strategy,
                lines=tuple(routing.Line(x.line_id, x.sku_code, x.quantity) for x in order.lines),
                city=city,
                capability=plan.capability,
                same_city_only=plan.same_city_only,
                handover_store_id=plan.handover_store_id,
                handover_accepts_transfers=accepts_transfers,
            ),
            candidates,
            rules,
        )
    when = now()
    attempt = order.routing_attempts + 1
    if decision.routed:
        outcome = "split" if decision.split else "single"
        if any(leg.via_transfer for leg in decision.legs):
            outcome = "transfer"
        order.routed(
            [
                PlannedLeg(
                    x.location_id, x.line_ids, x.via_transfer, x.distance_meters, x.same_city
                )
                for x in decision.legs
            ],
            plan.handover,
            plan.handover_store_id,
            explanation(decision, when),
            attempt,
            when,
        )
    else:
        outcome = "unfillable"
        deadline = when + timedelta(seconds=int(channel_rules.body["unfillable_timeout_seconds"]))
        order.unroutable(
            explanation(decision, when), attempt, decision.failure_reason, deadline, when
        )
    if await _save(ctx, order):
        metrics.ROUTING_DECISIONS.labels(outcome).inc()


def hold_lines(leg: Fulfilment, location_id: str | None = None) -> list[HoldLine]:
    return [HoldLine(*x) for x in leg.hold_lines(location_id)]


async def hold(ctx: OrderContext, order: Order, *, trust_replays: bool) -> None:
    """Hold every planned leg at inventory; a refusal gives back what was held and routes
    again. Unless the legs were routed in this same drive, a hold may be a replay of one
    given back before a crash: each is checked to still be active (else: compensate)."""
    planned = order.planned()
    try:
        for leg in planned:
            await ctx.inventory.reserve(leg.reservation_key, order.stock_channel, hold_lines(leg))
        if not trust_replays:
            for leg in planned:
                if not await ctx.inventory.hold_is_active(leg.reservation_key):
                    raise StockRefused(
                        f"hold {leg.reservation_key} was given back before a restart"
                    )
    except StockRefused as refused:
        # Compensate: give back the legs already held, then route again (stock moved since
        # routing) or park the order when it keeps happening.
        metrics.HOLDS_REFUSED.inc()
        for leg in planned:
            await ctx.inventory.release(leg.reservation_key, "hold refused on another leg")
        body = (await ctx.rules.get(order.channel_id)).body
        when = now()
        order.hold_refused(
            str(refused),
            give_up=order.routing_attempts >= ctx.config.max_routing_attempts,
            deadline=when + timedelta(seconds=int(body["unfillable_timeout_seconds"])),
            now=when,
        )
        await _save(ctx, order)
        return
    body = (await ctx.rules.get(order.channel_id)).body
    when = now()
    order.held(when + timedelta(seconds=int(body["payment_timeout_seconds"])), when)
    await _save(ctx, order)


# --- allocation ----------------------------------------------------------------------------------


async def allocate(ctx: OrderContext, order: Order) -> None:
    planned = order.planned()
    for leg in planned:
        if leg.via_transfer and not leg.transfer_id:
            try:
                await _request_transfer(ctx, order, leg)
            except StockRefused as refused:
                # Compensate: the order cannot be fulfilled as routed; release its holds.
                order.allocation_failed(str(refused), now())
                await _save(ctx, order)
                return
        if order.is_store_sale:
            # Carried out at the counter: the goods leave now.
            await ctx.inventory.confirm(leg.reservation_key)
    order.allocate(now())
    await _save(ctx, order)


async def _request_transfer(ctx: OrderContext, order: Order, leg: Fulfilment) -> None:
    """Ask inventory to move the leg's goods to the handover store. That it was asked is
    saved first and the transfer id right after, so a cancel can always call it off."""
    if not leg.transfer_requested:
        order.transfer_asked(leg.fulfilment_id, now())
        if not await ctx.batches.save(order):
            raise Unavailable(f"order {order.order_id} changed meanwhile")
    transfer_id = await _transfer_call(ctx, order, leg)
    order.transfer_made(leg.fulfilment_id, transfer_id, now())
    if not await ctx.batches.save(order):
        raise Unavailable(f"order {order.order_id} changed meanwhile")


async def _transfer_call(ctx: OrderContext, order: Order, leg: Fulfilment) -> str:
    return await ctx.inventory.request_transfer(
        f"transfer:{leg.reservation_key}",
        leg.location_id,
        leg.handover_store_id,
        leg.wanted(),
        f"order {order.order_id} ({leg.fulfilment_id})",
    )


# --- release on cancel ---------------------------------------------------------------------------


async def release(ctx: OrderContext, order: Order) -> None:
    """Compensate everything the order still has at inventory: call off transfers that
    have not shipped, give back the holds (a first-fit hold asked for included)."""
    reason = order.cancel_reason or "cancelled"
    notes: list[str] = []
    for leg in order.fulfilments:
        if leg.status in {F.PLANNED, F.PENDING}:
            note = await _cancel_transfer(ctx, order, leg, reason)
            if note:
                notes.append(note)
        if leg.status not in DONE and leg.status is not F.CANCELLED:
            await ctx.inventory.release(leg.reservation_key, reason)
    if order.hold_intent is not None:
        await ctx.inventory.release(order.hold_intent["key"], reason)
    order.released(notes, now())
    await _save(ctx, order)


async def _cancel_transfer(ctx: OrderContext, order: Order, leg: Fulfilment, reason: str) -> str:
    """Call off the leg's transfer if one was asked for and has not shipped; returns what
    happened, for the order's history."""
    if not leg.via_transfer:
        return ""
    transfer_id = leg.transfer_id
    if not transfer_id:
        if not leg.transfer_requested:
            return ""
        # Asked for, but the answer was lost in a crash: the same request id returns the
        # same transfer (or makes it now, to be called off at once).
        try:
            transfer_id = await _transfer_call(ctx, order, leg)
        except StockRefused:
            return ""
    cancelled = await ctx.inventory.cancel_transfer(
        f"cancel-transfer:{transfer_id}", transfer_id, f"order {order.order_id}: {reason}"
    )
    if cancelled:
        return f"transfer {transfer_id} cancelled"
    return f"transfer {transfer_id} had already shipped; not cancelled"
