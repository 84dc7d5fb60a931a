"""Commission use cases: attribute completed orders, pay every role once, record them for
statistics, raise diversion alerts, and take back the returned share on returns — each
order and each return applied once.

The consumer hands over every completed order (or return) of a batch at once: the use case
looks up what the batch names in a few statements (owners, staff, units, rules, closed
periods), decides each order with the pure rules (domain/attribution.py,
domain/commission_rules.py, domain/diversion.py, domain/ledger.py) and writes the results
set-based.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.protobuf.message import Message
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import events_pb2

from services.distribution import metrics
from services.distribution.adapters.proto import alert_to_proto, money, timestamp
from services.distribution.domain import guide_codes
from services.distribution.domain.attribution import (
    Attribution,
    CompletedOrder,
    Directory,
    Fulfilment,
    attribute,
    guide_candidates,
)
from services.distribution.domain.commission_rules import (
    Beneficiary,
    CommissionPlan,
    Role,
    Rule,
    plan_commissions,
)
from services.distribution.domain.diversion import AlertDraft, detect_alerts
from services.distribution.domain.ledger import (
    Entry,
    OrderRecord,
    PaidCommissionLine,
    PaidOrder,
    accrual_entries,
    clawback_entries,
    paid_lines,
    take_back,
)
from services.distribution.domain.organisation import OrgUnit, Staff, child_path
from services.distribution.domain.settlement import landing_period
from services.distribution.service_layer.access import DistributionConfig

log = logging.getLogger(__name__)

__all__ = ["CompletedOrder", "Fulfilment", "ReceivedReturn"]


@dataclass(frozen=True)
class ReceivedReturn:
    order_id: str
    return_id: str
    # (line_id, quantity); empty means the whole order came back.
    lines: tuple[tuple[str, int], ...]
    refund_minor: int
    received_at: datetime


class CommissionStore(Protocol):
    """Where the commission use cases read and write (adapters/commission_store.py)."""

    async def member_owners(self, member_ids: Collection[str]) -> dict[str, str]: ...
    async def staff_with_units(
        self, staff_ids: Collection[str]
    ) -> dict[str, tuple[Staff, OrgUnit]]: ...
    async def units_named_or_located(
        self, unit_ids: Collection[str], location_ids: Collection[str]
    ) -> tuple[dict[str, OrgUnit], dict[str, OrgUnit]]: ...
    async def rules(self, hq_ids: Collection[str]) -> dict[str, list[Rule]]: ...
    async def minimum_prices(
        self, keys: Collection[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]: ...
    async def add_order_records(self, records: Sequence[OrderRecord]) -> set[str]: ...
    async def add_commission_lines(self, lines: Sequence[PaidCommissionLine]) -> None: ...
    async def lock_periods(self, hq_ids: Collection[str]) -> dict[str, set[str]]: ...
    async def add_entries(self, entries: Sequence[Entry]) -> None: ...
    async def add_alerts(
        self, alerts: Sequence[tuple[str, str, AlertDraft]]
    ) -> list[dict[str, object]]: ...
    async def lock_paid_orders(self, order_ids: Collection[str]) -> dict[str, PaidOrder]: ...
    async def add_applied_returns(
        self, returns: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]: ...
    async def lock_commission_lines(
        self, order_ids: Collection[str]
    ) -> dict[str, list[PaidCommissionLine]]: ...
    async def save_commission_lines(self, lines: Sequence[PaidCommissionLine]) -> None: ...
    async def add_refunds(self, refunds: Sequence[tuple[str, int, int]]) -> None: ...


class CommissionWork(Protocol):
    """The unit of work of a batch: the store, the events it causes, metrics after commit."""

    @property
    def store(self) -> CommissionStore: ...

    def emit(self, message: Message, aggregate_id: str) -> None: ...
    def after_commit(self, callback: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class _Booked:
    order: CompletedOrder
    attribution: Attribution
    plan: CommissionPlan


async def apply_orders_completed(
    work: CommissionWork, orders: Sequence[CompletedOrder], config: DistributionConfig
) -> None:
    """Pay every role its commission under the rules in force at completion, book it in the
    first open period, record the order for statistics and raise diversion alerts. A second
    delivery of the same order (whatever its event id) pays nothing."""
    for order in orders:
        if not order.order_id:
            log.warning("completed order without an order id ignored")
    orders = [o for o in orders if o.order_id]
    if not orders:
        return
    directory, candidates = await _look_up(work, orders, config)
    attributed: list[tuple[CompletedOrder, Attribution]] = []
    unattributed = 0
    for order in orders:
        found = attribute(order, candidates[order.order_id], directory)
        if found is None:
            unattributed += 1
            log.info(
                "order names no known unit; nothing to pay", extra={"order_id": order.order_id}
            )
        else:
            attributed.append((order, found))
    if unattributed:
        work.after_commit(
            lambda: metrics.ORDERS_ATTRIBUTED.labels("unattributed").inc(unattributed)
        )
    if not attributed:
        return
    rules = await work.store.rules({a.hq_id for _, a in attributed})
    planned = [
        _Booked(order, found, plan_commissions(found.facts, rules[found.hq_id]))
        for order, found in attributed
    ]
    fresh = await work.store.add_order_records([_record(b) for b in planned])
    booked: list[_Booked] = []
    for b in planned:
        if b.order.order_id in fresh:
            fresh.discard(b.order.order_id)
            booked.append(b)
        else:
            log.info("order already applied", extra={"order_id": b.order.order_id})
    if not booked:
        return
    await _book(work, booked)
    await _raise_alerts(work, booked, directory)
    flows = [b.plan.flow.name.lower() for b in booked]

    def count() -> None:
        for flow in flows:
            metrics.ORDERS_ATTRIBUTED.labels(flow).inc()

    work.after_commit(count)


async def _look_up(
    work: CommissionWork, orders: Sequence[CompletedOrder], config: DistributionConfig
) -> tuple[Directory, dict[str, list[str]]]:
    """Everything the orders name, in three statements; and each order's guide candidates
    (the showroom-link guide, the member's owning guide, the guide who rang up the sale)."""
    owners = await work.store.member_owners({o.member_id for o in orders})
    rejected = 0
    candidates: dict[str, list[str]] = {}
    for order in orders:
        referred = None
        if order.referring_guide_code:
            referred = guide_codes.verify(config.link_key, order.referring_guide_code)
            if referred is None:
                rejected += 1
                log.warning("guide code rejected", extra={"order_id": order.order_id})
        candidates[order.order_id] = guide_candidates(
            referred, owners.get(order.member_id), order.selling_guide_staff_id
        )
    if rejected:
        work.after_commit(lambda: metrics.GUIDE_CODES_REJECTED.inc(rejected))
    staff = await work.store.staff_with_units({c for cs in candidates.values() for c in cs})
    stores = {s for o in orders for s in (o.selling_store_id, o.pickup_store_id)}
    locations = {f.location_id for o in orders for f in o.fulfilments} | stores
    units, by_location = await work.store.units_named_or_located(stores, locations)
    return Directory(units, by_location, staff), candidates


def _record(b: _Booked) -> OrderRecord:
    order, found, plan = b.order, b.attribution, b.plan
    credited = found.credited_store(plan)
    return OrderRecord(
        order_id=order.order_id,
        hq_id=found.hq_id,
        scope_path=found.scope_path(plan),
        flow=int(plan.flow),
        channel_kind=int(order.channel),
        guide_staff_id=found.facts.guide.staff_id if found.facts.guide else "",
        store_id=credited.unit_id if credited else "",
        province=(credited and credited.province) or order.delivery_province,
        city=(credited and credited.city) or order.delivery_city,
        currency=order.currency,
        total_minor=order.total_minor,
        commission_minor=plan.total,
        completed_at=order.completed_at,
    )


async def _book(work: CommissionWork, booked: Sequence[_Booked]) -> None:
    """What each role was paid per line, and the entries of the period each order lands in."""
    paying = [b for b in booked if b.plan.payouts]
    if not paying:
        return
    await work.store.add_commission_lines(
        [
            line
            for b in paying
            for line in paid_lines(
                b.order.order_id,
                b.plan,
                {line.line_id: max(1, line.quantity) for line in b.order.lines},
            )
        ]
    )
    closed = await work.store.lock_periods({b.attribution.hq_id for b in paying})
    await work.store.add_entries(
        [
            entry
            for b in paying
            for entry in accrual_entries(
                b.attribution.hq_id,
                b.order.order_id,
                b.plan,
                landing_period(b.order.completed_at, closed[b.attribution.hq_id]),
                b.order.currency,
                b.order.completed_at,
            )
        ]
    )
    accrued: list[tuple[str, str, int]] = []
    for b in paying:
        order, plan = b.order, b.plan
        accrued += [(p.role.name.lower(), order.currency, p.total) for p in plan.payouts if p.total]
        work.emit(
            events_pb2.CommissionAccruedEvent(
                order_id=order.order_id,
                flow=pb.CommissionFlow.ValueType(int(plan.flow)),
                commissions=[
                    pb.OrderCommission(
                        role=pb.CommissionRole.ValueType(int(p.role)),
                        beneficiary_kind=pb.BeneficiaryKind.ValueType(int(p.beneficiary.kind)),
                        beneficiary_id=p.beneficiary.beneficiary_id,
                        paid=money(p.total, order.currency),
                        clawed_back=money(0, order.currency),
                    )
                    for p in plan.payouts
                ],
                accrue_time=timestamp(order.completed_at),
            ),
            aggregate_id=order.order_id,
        )

    def count() -> None:
        for role, currency, amount in accrued:
            metrics.COMMISSION_ACCRUED.labels(role, currency).inc(amount)

    work.after_commit(count)


async def _raise_alerts(
    work: CommissionWork, booked: Sequence[_Booked], directory: Directory
) -> None:
    """Diversion: dealer shipments and sales outside their territories, distributor prices
    below the brand's minimum."""
    dealer_sold = [b for b in booked if b.attribution.selling_dealer is not None]
    minimums = await work.store.minimum_prices(
        {
            (b.attribution.hq_id, b.order.currency, line.sku_code)
            for b in dealer_sold
            for line in b.order.lines
        }
    )
    units = {
        u.unit_id: u for u in (*directory.units.values(), *directory.units_by_location.values())
    }
    raised: list[tuple[str, str, AlertDraft]] = []
    for b in booked:
        order, found = b.order, b.attribution
        drafts = detect_alerts(
            order_id=order.order_id,
            currency=order.currency,
            delivery_province=order.delivery_province,
            delivery_city=order.delivery_city,
            selling_dealer=found.selling_dealer,
            shipments=found.shipments,
            lines=order.lines,
            minimum_prices={
                sku: minimum
                for (hq, currency, sku), minimum in minimums.items()
                if hq == found.hq_id and currency == order.currency
            },
        )
        for draft in drafts:
            dealer = units.get(draft.dealer_id)
            raised.append(
                (found.hq_id, dealer.path if dealer else child_path("/", found.hq_id), draft)
            )
    if not raised:
        return
    rows = await work.store.add_alerts(raised)
    for row in rows:
        work.emit(
            events_pb2.AlertRaisedEvent(alert=alert_to_proto(row)),
            aggregate_id=str(row["dealer_id"]),
        )
    kinds = [draft.kind.name.lower() for _, _, draft in raised]

    def count() -> None:
        for kind in kinds:
            metrics.ALERTS_RAISED.labels(kind).inc()

    work.after_commit(count)


async def apply_returns_received(work: CommissionWork, returns: Sequence[ReceivedReturn]) -> None:
    """Take back, per returned line and role, the returned share of what was paid (the
    whole order when the return names no lines), booked in the first open period. A return
    is applied once; an order we never paid has nothing to take back."""
    for received in returns:
        if not received.order_id:
            log.warning("return without an order id ignored")
    returns = [r for r in returns if r.order_id]
    if not returns:
        return
    paid = await work.store.lock_paid_orders({r.order_id for r in returns})
    for received in returns:
        if received.order_id not in paid:
            log.info(
                "return for an order without commissions",
                extra={"order_id": received.order_id},
            )
    first_time = await work.store.add_applied_returns(
        [(r.order_id, r.return_id) for r in returns if r.order_id in paid]
    )
    fresh: list[ReceivedReturn] = []
    for received in returns:
        key = (received.order_id, received.return_id)
        if key in first_time:
            first_time.discard(key)
            fresh.append(received)
    if not fresh:
        return
    lines = await work.store.lock_commission_lines({r.order_id for r in fresh})
    refunds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    taken_by_return: list[tuple[ReceivedReturn, dict[tuple[Role, Beneficiary], int]]] = []
    for received in fresh:
        taken = take_back(lines[received.order_id], received.lines)
        refunds[received.order_id][0] += max(0, received.refund_minor)
        refunds[received.order_id][1] += sum(taken.values())
        taken_by_return.append((received, taken))
    await work.store.save_commission_lines([line for ls in lines.values() for line in ls])
    await work.store.add_refunds([(o, r[0], r[1]) for o, r in refunds.items()])
    clawing = [(r, taken) for r, taken in taken_by_return if sum(taken.values()) > 0]
    if not clawing:
        return
    closed = await work.store.lock_periods({paid[r.order_id].hq_id for r, _ in clawing})
    entries: list[Entry] = []
    for received, taken in clawing:
        order = paid[received.order_id]
        entries += clawback_entries(
            order.hq_id,
            order.flow,
            received.order_id,
            received.return_id,
            taken,
            landing_period(received.received_at, closed[order.hq_id]),
            order.currency,
            received.received_at,
        )
        work.emit(
            events_pb2.CommissionClawedBackEvent(
                order_id=received.order_id,
                return_id=received.return_id,
                clawbacks=[
                    pb.OrderCommission(
                        role=pb.CommissionRole.ValueType(int(role)),
                        beneficiary_kind=pb.BeneficiaryKind.ValueType(int(who.kind)),
                        beneficiary_id=who.beneficiary_id,
                        clawed_back=money(amount, order.currency),
                    )
                    for (role, who), amount in taken.items()
                    if amount > 0
                ],
                claw_back_time=timestamp(received.received_at),
            ),
            aggregate_id=received.order_id,
        )
    await work.store.add_entries(entries)
    clawed = [
        (role.name.lower(), paid[r.order_id].currency, amount)
        for r, taken in clawing
        for (role, _who), amount in taken.items()
    ]

    def count() -> None:
        for role, currency, amount in clawed:
            metrics.COMMISSION_CLAWED_BACK.labels(role, currency).inc(amount)

    work.after_commit(count)
