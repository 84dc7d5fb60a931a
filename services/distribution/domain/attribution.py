"""Who a completed order is credited to, and who earns on it: the credited guide, the
selling, pickup and fulfilling units within one brand's tree, the unit statistics count the
order for, and the dealer shipments and sales that diversion rules judge. Pure: the service
layer looks up a batch's units, staff and owners once and attributes every order from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.distribution.domain.commission_rules import (
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
)
from services.distribution.domain.diversion import Dealer, Shipment
from services.distribution.domain.organisation import (
    DEALER_KINDS,
    SELLING_KINDS,
    OrgUnit,
    Staff,
    StaffRole,
    UnitKind,
    child_path,
)


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
class Directory:
    """What a batch of orders names, looked up once: units by id and by inventory location
    id, and staff (with their units) by staff id."""

    units: Mapping[str, OrgUnit]
    units_by_location: Mapping[str, OrgUnit]
    staff: Mapping[str, tuple[Staff, OrgUnit]]

    def store(self, reference: str) -> OrgUnit | None:
        """The order service names stores by their inventory location id; an org unit id
        is accepted too."""
        return self.units.get(reference) or self.units_by_location.get(reference)


@dataclass(frozen=True)
class Attribution:
    """An order placed in one brand's tree: the facts commission rules read, and what
    diversion rules judge."""

    hq_id: str
    facts: OrderFacts
    guide_unit: OrgUnit | None
    selling: OrgUnit | None
    pickup: OrgUnit | None
    fulfilling_units: tuple[OrgUnit, ...]
    shipments: tuple[Shipment, ...]

    @property
    def selling_dealer(self) -> Dealer | None:
        unit = self.selling
        if unit is None or unit.kind not in DEALER_KINDS:
            return None
        return Dealer(unit.unit_id, unit.kind, unit.territories)

    def credited_store(self, plan: CommissionPlan) -> OrgUnit | None:
        """The unit statistics count the order for: the selling store for in-store sales
        (flows 1 and 2), else the guide's unit, the pickup store or the first fulfilling
        unit."""
        if plan.flow in (1, 2) and self.selling:
            return self.selling
        return (
            self.guide_unit
            or self.pickup
            or (self.fulfilling_units[0] if self.fulfilling_units else None)
        )

    def scope_path(self, plan: CommissionPlan) -> str:
        """Who may see the order: its credited unit, else (nobody below HQ earned it) the
        HQ itself."""
        store = self.credited_store(plan)
        return store.path if store else child_path("/", self.hq_id)


def guide_candidates(referred: str | None, owner: str | None, selling_guide: str) -> list[str]:
    """The showroom-link guide (signature already verified), else the member's owning
    guide, else the guide who rang up the sale."""
    return [c for c in (referred, owner, selling_guide) if c]


def credited_guide(
    candidates: Sequence[str], directory: Directory
) -> tuple[CreditedGuide | None, OrgUnit | None]:
    """The first candidate that is a known guide."""
    for staff_id in candidates:
        found = directory.staff.get(staff_id)
        if found is None:
            continue
        member, unit = found
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


def _beneficiary(unit: OrgUnit) -> Beneficiary:
    kind = BeneficiaryKind.DEALER if unit.kind in DEALER_KINDS else BeneficiaryKind.STORE
    return Beneficiary(kind, unit.unit_id)


def attribute(
    order: CompletedOrder, candidates: Sequence[str], directory: Directory
) -> Attribution | None:
    """Place the order in the tree of the first unit it names (a unit of another brand's
    tree cannot earn on it); None when it names no known unit (nothing to pay)."""
    guide, guide_unit = credited_guide(candidates, directory)
    located = [
        unit
        for reference in (
            *(f.location_id for f in order.fulfilments),
            order.selling_store_id,
            order.pickup_store_id,
        )
        if reference and (unit := directory.units_by_location.get(reference)) is not None
    ]
    known = [
        u
        for u in (
            directory.store(order.selling_store_id),
            guide_unit,
            directory.store(order.pickup_store_id),
        )
        if u is not None
    ] + located
    if not known:
        return None
    hq_id = known[0].hq_id

    def in_tree(unit: OrgUnit | None) -> OrgUnit | None:
        return unit if unit is not None and unit.hq_id == hq_id else None

    if guide_unit is not None and guide_unit.hq_id != hq_id:
        guide, guide_unit = None, None
    selling = in_tree(directory.store(order.selling_store_id))
    pickup = in_tree(directory.store(order.pickup_store_id))
    fulfilling: dict[str, FulfillingUnit] = {}
    fulfilling_units: list[OrgUnit] = []
    shipments: list[Shipment] = []
    for fulfilment in order.fulfilments:
        unit = in_tree(directory.units_by_location.get(fulfilment.location_id))
        if unit is None:
            continue
        fulfilling_units.append(unit)
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
    return Attribution(
        hq_id=hq_id,
        facts=facts,
        guide_unit=guide_unit,
        selling=selling,
        pickup=pickup,
        fulfilling_units=tuple(fulfilling_units),
        shipments=tuple(shipments),
    )
