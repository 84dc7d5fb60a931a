"""Commission use cases: attribute a completed order, pay every role once, raise diversion
alerts, and take back the returned share on returns — each event applied once."""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import events_pb2
from sqlalchemy.dialects.postgresql import insert

from libs.unit_of_work import UnitOfWork
from services.distribution import metrics
from services.distribution.adapters.proto import alert_to_proto, money, timestamp
from services.distribution.adapters.repository import Repository, territories_to_json
from services.distribution.adapters.tables import (
    alerts,
    applied_returns,
    commission_lines,
    entries,
    order_facts,
)
from services.distribution.domain import guide_codes
from services.distribution.domain.commission_rules import (
    NOT_CLAWED_BACK,
    REBATE_ROLES,
    Beneficiary,
    BeneficiaryKind,
    Channel,
    CommissionPlan,
    CreditedGuide,
    FulfillingUnit,
    Handover,
    Line,
    Mode,
    OrderFacts,
    PaidLine,
    Role,
    clawback_for_line,
    plan_commissions,
)
from services.distribution.domain.diversion import AlertDraft, Dealer, Shipment, detect_alerts
from services.distribution.domain.organisation import (
    DEALER_KINDS,
    SELLING_KINDS,
    OrgUnit,
    StaffRole,
    UnitKind,
    child_path,
)
from services.distribution.domain.settlement import landing_period
from services.distribution.service_layer.access import DistributionConfig

log = logging.getLogger(__name__)

ENTRY_COMMISSION, ENTRY_REBATE, ENTRY_CLAWBACK = 1, 2, 3
ALERT_OPEN = 1


@dataclass(frozen=True)
class Fulfilment:
    fulfilment_id: str
    location_id: str
    line_ids: tuple[str, ...]


@dataclass(frozen=True)
class CompletedOrder:
    """The facts of an OrderCompletedEvent that distribution needs."""

    order_id: str
    member_id: str
    channel: Channel
    mode: Mode
    handover: Handover
    selling_store_id: str
    selling_guide_staff_id: str
    referring_guide_code: str
    pickup_store_id: str
    delivery_province: str
    delivery_city: str
    lines: tuple[Line, ...]
    fulfilments: tuple[Fulfilment, ...]
    currency: str
    total_minor: int
    completed_at: datetime


@dataclass(frozen=True)
class ReceivedReturn:
    order_id: str
    return_id: str
    # (line_id, quantity); empty means the whole order came back.
    lines: tuple[tuple[str, int], ...]
    refund_minor: int
    received_at: datetime


def _beneficiary(unit: OrgUnit) -> Beneficiary:
    kind = BeneficiaryKind.DEALER if unit.kind in DEALER_KINDS else BeneficiaryKind.STORE
    return Beneficiary(kind, unit.unit_id)


async def _credited_guide(
    repo: Repository, order: CompletedOrder, config: DistributionConfig
) -> tuple[CreditedGuide | None, OrgUnit | None]:
    """The showroom-link guide (signature verified), else the member's owning guide, else
    the guide who rang up the sale — the first of them that is a known guide."""
    candidates: list[str] = []
    if order.referring_guide_code:
        referred = guide_codes.verify(config.link_key, order.referring_guide_code)
        if referred is None:
            metrics.GUIDE_CODES_REJECTED.inc()
            log.warning("guide code rejected", extra={"order_id": order.order_id})
        else:
            candidates.append(referred)
    if order.member_id:
        owner = await repo.member_owner(order.member_id)
        if owner is not None:
            candidates.append(owner[0])
    if order.selling_guide_staff_id:
        candidates.append(order.selling_guide_staff_id)
    known = await repo.staff_with_units(candidates)
    for staff_id in candidates:
        if staff_id not in known:
            continue
        member, unit = known[staff_id]
        if member.role != StaffRole.GUIDE:
            continue
        return (
            CreditedGuide(
                staff_id=member.staff_id,
                unit_id=unit.unit_id,
                unit_is_store=unit.kind == UnitKind.STORE,
                unit_is_franchisee=unit.kind == UnitKind.FRANCHISEE,
                unit_sells=unit.kind in SELLING_KINDS,
            ),
            unit,
        )
    return None, None


async def apply_order_completed(
    uow: UnitOfWork, order: CompletedOrder, config: DistributionConfig
) -> None:
    """Pay every role its commission under the rules in force at completion, book it in the
    first open period, record the order for statistics and raise diversion alerts. A second
    delivery of the same order (whatever its event id) pays nothing."""
    if not order.order_id:
        log.warning("completed order without an order id ignored")
        return
    repo = Repository(uow.session)
    guide, guide_unit = await _credited_guide(repo, order, config)
    stores = [order.selling_store_id, order.pickup_store_id]
    named, by_location = await repo.units_named_or_located(
        stores, [f.location_id for f in order.fulfilments] + stores
    )

    def store(reference: str) -> OrgUnit | None:
        # The order service names stores by their inventory location id; an org unit id
        # is accepted too.
        return named.get(reference) or by_location.get(reference)

    known = [
        u
        for u in (store(order.selling_store_id), guide_unit, store(order.pickup_store_id))
        if u is not None
    ] + list(by_location.values())
    if not known:
        metrics.ORDERS_ATTRIBUTED.labels("unattributed").inc()
        log.info("order names no known unit; nothing to pay", extra={"order_id": order.order_id})
        return
    hq_id = known[0].hq_id

    def in_tree(unit: OrgUnit | None) -> OrgUnit | None:
        # A unit of another brand's tree cannot earn on this brand's order.
        return unit if unit is not None and unit.hq_id == hq_id else None

    if guide_unit is not None and guide_unit.hq_id != hq_id:
        guide, guide_unit = None, None
    selling = in_tree(store(order.selling_store_id))
    pickup = in_tree(store(order.pickup_store_id))
    fulfilling: dict[str, FulfillingUnit] = {}
    shipments: list[Shipment] = []
    for fulfilment in order.fulfilments:
        unit = in_tree(by_location.get(fulfilment.location_id))
        if unit is None:
            continue
        for line_id in fulfilment.line_ids:
            fulfilling[line_id] = FulfillingUnit(
                unit_id=unit.unit_id,
                fulfilment_id=fulfilment.fulfilment_id,
                is_franchisee=unit.kind == UnitKind.FRANCHISEE,
                same_city=bool(order.delivery_city) and unit.city == order.delivery_city,
                is_dealer=unit.kind in DEALER_KINDS,
            )
        if unit.kind in DEALER_KINDS:
            shipments.append(
                Shipment(
                    fulfilment.fulfilment_id, Dealer(unit.unit_id, unit.kind, unit.territories)
                )
            )
    facts = OrderFacts(
        order_id=order.order_id,
        currency=order.currency,
        channel=order.channel,
        mode=order.mode,
        handover=order.handover,
        lines=order.lines,
        completed_at=order.completed_at,
        guide=guide,
        selling_unit=_beneficiary(selling) if selling else None,
        pickup_unit=_beneficiary(pickup) if pickup else None,
        fulfilling_by_line=fulfilling,
    )
    rules, _currencies = await repo.rules(hq_id)
    plan = plan_commissions(facts, rules)

    fulfilling_units = [
        u for f in order.fulfilments if (u := in_tree(by_location.get(f.location_id)))
    ]
    credited_store = (
        selling
        if plan.flow in (1, 2) and selling
        else guide_unit or pickup or (fulfilling_units[0] if fulfilling_units else None)
    )
    # Nobody below HQ earned the order: it is credited to the HQ itself.
    scope_path = credited_store.path if credited_store else child_path("/", hq_id)
    first_time = (
        await uow.session.execute(
            insert(order_facts)
            .values(
                order_id=order.order_id,
                hq_id=hq_id,
                scope_path=scope_path,
                flow=int(plan.flow),
                channel_kind=int(order.channel),
                guide_staff_id=guide.staff_id if guide else "",
                store_id=credited_store.unit_id if credited_store else "",
                province=(credited_store and credited_store.province) or order.delivery_province,
                city=(credited_store and credited_store.city) or order.delivery_city,
                currency=order.currency,
                total_minor=order.total_minor,
                commission_minor=plan.total,
                completed_at=order.completed_at,
            )
            .on_conflict_do_nothing()
            .returning(order_facts.c.order_id)
        )
    ).first()
    if first_time is None:
        log.info("order already applied", extra={"order_id": order.order_id})
        return
    metrics.ORDERS_ATTRIBUTED.labels(plan.flow.name.lower()).inc()
    await _book_plan(uow, repo, hq_id, order, plan)

    selling_dealer = (
        Dealer(selling.unit_id, selling.kind, selling.territories)
        if selling and selling.kind in DEALER_KINDS
        else None
    )
    minimums = (
        await repo.minimum_prices(hq_id, order.currency, (line.sku_code for line in order.lines))
        if selling_dealer is not None
        else {}
    )
    drafts = detect_alerts(
        order_id=order.order_id,
        currency=order.currency,
        delivery_province=order.delivery_province,
        delivery_city=order.delivery_city,
        selling_dealer=selling_dealer,
        shipments=shipments,
        lines=order.lines,
        minimum_prices=minimums,
    )
    for draft in drafts:
        dealer = await repo.unit(draft.dealer_id)
        await _raise_alert(uow, hq_id, dealer.path if dealer else child_path("/", hq_id), draft)


async def _book_plan(
    uow: UnitOfWork, repo: Repository, hq_id: str, order: CompletedOrder, plan: CommissionPlan
) -> None:
    if not plan.payouts:
        return
    quantities = {line.line_id: max(1, line.quantity) for line in order.lines}
    await uow.session.execute(
        commission_lines.insert(),
        [
            {
                "order_id": order.order_id,
                "role": int(payout.role),
                "line_id": line_id,
                "beneficiary_kind": int(payout.beneficiary.kind),
                "beneficiary_id": payout.beneficiary.beneficiary_id,
                "quantity": quantities[line_id],
                "paid_minor": amount,
            }
            for payout in plan.payouts
            for line_id, amount in payout.per_line.items()
        ],
    )
    await repo.lock_periods_shared(hq_id)
    period = landing_period(order.completed_at, await repo.closed_periods(hq_id))
    paying = [p for p in plan.payouts if p.total > 0]
    if paying:
        await uow.session.execute(
            entries.insert(),
            [
                {
                    "hq_id": hq_id,
                    "beneficiary_kind": int(p.beneficiary.kind),
                    "beneficiary_id": p.beneficiary.beneficiary_id,
                    "period": period,
                    "kind": ENTRY_REBATE if p.role in REBATE_ROLES else ENTRY_COMMISSION,
                    "role": int(p.role),
                    "flow": int(plan.flow),
                    "order_id": order.order_id,
                    "amount_minor": p.total,
                    "currency": order.currency,
                    "occurred_at": order.completed_at,
                }
                for p in paying
            ],
        )
    for p in paying:
        metrics.COMMISSION_ACCRUED.labels(p.role.name.lower(), order.currency).inc(p.total)
    uow.emit(
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


async def _raise_alert(uow: UnitOfWork, hq_id: str, dealer_path: str, draft: AlertDraft) -> None:
    evidence: dict[str, object] = {
        "fulfilment_id": draft.fulfilment_id,
        "delivery_province": draft.delivery_province,
        "delivery_city": draft.delivery_city,
        "territories": territories_to_json(draft.territories),
    }
    if draft.sku_code:
        evidence |= {
            "sku_code": draft.sku_code,
            "unit_price_minor": draft.unit_price_minor,
            "minimum_unit_price_minor": draft.minimum_unit_price_minor,
            "currency": draft.currency,
        }
    row = (
        await uow.session.execute(
            alerts.insert()
            .values(
                alert_id=str(uuid.uuid4()),
                hq_id=hq_id,
                kind=int(draft.kind),
                status=ALERT_OPEN,
                dealer_id=draft.dealer_id,
                dealer_path=dealer_path,
                order_id=draft.order_id,
                evidence=json.loads(json.dumps(evidence)),
                raised_at=sa.func.now(),
            )
            .returning(alerts)
        )
    ).one()
    metrics.ALERTS_RAISED.labels(draft.kind.name.lower()).inc()
    uow.emit(
        events_pb2.AlertRaisedEvent(alert=alert_to_proto(dict(row._mapping))),
        aggregate_id=draft.dealer_id,
    )


async def apply_return_received(uow: UnitOfWork, received: ReceivedReturn) -> None:
    """Take back, per returned line and role, the returned share of what was paid (the
    whole order when the return names no lines), booked in the first open period. A return
    is applied once; an order we never paid has nothing to take back."""
    if not received.order_id:
        log.warning("return without an order id ignored")
        return
    facts = (
        await uow.session.execute(
            sa.select(order_facts)
            .where(order_facts.c.order_id == received.order_id)
            .with_for_update()
        )
    ).first()
    if facts is None:
        log.info("return for an order without commissions", extra={"order_id": received.order_id})
        return
    first_time = (
        await uow.session.execute(
            insert(applied_returns)
            .values(order_id=received.order_id, return_id=received.return_id)
            .on_conflict_do_nothing()
            .returning(applied_returns.c.return_id)
        )
    ).first()
    if first_time is None:
        return
    paid_rows = (
        await uow.session.execute(
            sa.select(commission_lines)
            .where(commission_lines.c.order_id == received.order_id)
            .order_by(commission_lines.c.role, commission_lines.c.line_id)
            .with_for_update()
        )
    ).all()
    returning: dict[str, int] = defaultdict(int)
    whole_lines: set[str] = set()
    for line_id, quantity in received.lines:
        if quantity > 0:
            returning[line_id] += quantity
        else:
            whole_lines.add(line_id)
    taken: dict[tuple[Role, Beneficiary], int] = defaultdict(int)
    updates: list[dict[str, object]] = []
    for row in paid_rows:
        role = Role(row.role)
        if role in NOT_CLAWED_BACK:
            continue
        if not received.lines or row.line_id in whole_lines:
            quantity = row.quantity
        else:
            quantity = returning.get(row.line_id, 0)
        if quantity <= 0:
            continue
        amount, returned = clawback_for_line(
            PaidLine(row.quantity, row.paid_minor, row.returned_quantity, row.clawed_minor),
            quantity,
        )
        # Absolute values are safe: the rows are locked for this transaction.
        updates.append(
            {
                "k_role": row.role,
                "k_line": row.line_id,
                "v_returned": returned,
                "v_clawed": row.clawed_minor + amount,
            }
        )
        who = Beneficiary(BeneficiaryKind(row.beneficiary_kind), row.beneficiary_id)
        taken[(role, who)] += amount
    if updates:
        await uow.session.execute(
            commission_lines.update()
            .where(
                commission_lines.c.order_id == received.order_id,
                commission_lines.c.role == sa.bindparam("k_role"),
                commission_lines.c.line_id == sa.bindparam("k_line"),
            )
            .values(
                returned_quantity=sa.bindparam("v_returned"),
                clawed_minor=sa.bindparam("v_clawed"),
            ),
            updates,
        )
    total_taken = sum(taken.values())
    await uow.session.execute(
        order_facts.update()
        .where(order_facts.c.order_id == received.order_id)
        .values(
            refunded_minor=order_facts.c.refunded_minor + max(0, received.refund_minor),
            commission_minor=order_facts.c.commission_minor - total_taken,
        )
    )
    if total_taken == 0:
        return
    repo = Repository(uow.session)
    await repo.lock_periods_shared(facts.hq_id)
    period = landing_period(received.received_at, await repo.closed_periods(facts.hq_id))
    await uow.session.execute(
        entries.insert(),
        [
            {
                "hq_id": facts.hq_id,
                "beneficiary_kind": int(who.kind),
                "beneficiary_id": who.beneficiary_id,
                "period": period,
                "kind": ENTRY_CLAWBACK,
                "role": int(role),
                "flow": facts.flow,
                "order_id": received.order_id,
                "return_id": received.return_id,
                "amount_minor": -amount,
                "currency": facts.currency,
                "occurred_at": received.received_at,
            }
            for (role, who), amount in taken.items()
            if amount > 0
        ],
    )
    for (role, _who), amount in taken.items():
        metrics.COMMISSION_CLAWED_BACK.labels(role.name.lower(), facts.currency).inc(amount)
    uow.emit(
        events_pb2.CommissionClawedBackEvent(
            order_id=received.order_id,
            return_id=received.return_id,
            clawbacks=[
                pb.OrderCommission(
                    role=pb.CommissionRole.ValueType(int(role)),
                    beneficiary_kind=pb.BeneficiaryKind.ValueType(int(who.kind)),
                    beneficiary_id=who.beneficiary_id,
                    clawed_back=money(amount, facts.currency),
                )
                for (role, who), amount in taken.items()
                if amount > 0
            ],
            claw_back_time=timestamp(received.received_at),
        ),
        aggregate_id=received.order_id,
    )
