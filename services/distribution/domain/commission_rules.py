"""Commission rules: which flow an order is in, who is credited, how much each role earns and
how much a return takes back. Pure arithmetic on integer minor units.

Rounding rule: a role's total on an order is computed once on the sum of the lines it covers
(rate * basis / 10 000, rounded half up to the minor unit; a fixed amount as is) and then
spread over those lines by the largest-remainder method in proportion to the line totals
(ties go to the earlier line), so the per-line amounts always sum exactly to the role's total.
A return takes back, per line, the paid amount * returned quantity / line quantity computed
on the cumulative returned quantity (rounded half up) minus what was already taken back, so
a line returned in several parts takes back exactly what it paid and never more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

BASIS_POINTS = 10_000


class Flow(IntEnum):
    """The five commission flows (numbers match omni.distribution.v1.CommissionFlow)."""

    UNSPECIFIED = 0
    OWN_STORE = 1
    OTHER_STORE = 2
    GUIDE_DELIVERY = 3
    EXPRESS = 4
    STORE_PICKUP = 5


class Role(IntEnum):
    """Who a rule pays (numbers match omni.distribution.v1.CommissionRole)."""

    OWNING_GUIDE = 1
    SELLING_STORE = 2
    FULFILLING_STORE = 3
    REFERRING_FRANCHISEE = 4
    FULFILLING_FRANCHISEE = 5


REBATE_ROLES = frozenset({Role.REFERRING_FRANCHISEE, Role.FULFILLING_FRANCHISEE})
# The saving of a same-city shipment was realised when the goods moved; a return does not
# undo it, so that rebate is never clawed back.
NOT_CLAWED_BACK = frozenset({Role.FULFILLING_FRANCHISEE})


class Channel(IntEnum):
    """Numbers match omni.order.v1.ChannelKind."""

    UNSPECIFIED = 0
    OWN_ONLINE = 1
    MARKETPLACE = 2
    STORE = 3
    DISTRIBUTION = 4
    LOCAL_LIFE = 5


class Mode(IntEnum):
    """Numbers match omni.order.v1.FulfilmentMode."""

    UNSPECIFIED = 0
    STORE_SALE = 1
    EXPRESS_DELIVERY = 2
    SAME_CITY_DELIVERY = 3
    STORE_PICKUP = 4
    GUIDE_DELIVERY = 5
    ENDLESS_AISLE = 6


class Handover(IntEnum):
    """Numbers match omni.order.v1.EndlessAisleHandover."""

    UNSPECIFIED = 0
    DELIVERY = 1
    PICKUP_IN_SELLING_STORE = 2
    GUIDE = 3


class BeneficiaryKind(IntEnum):
    """Numbers match omni.distribution.v1.BeneficiaryKind."""

    GUIDE = 1
    STORE = 2
    DEALER = 3


@dataclass(frozen=True)
class Beneficiary:
    kind: BeneficiaryKind
    beneficiary_id: str


@dataclass(frozen=True)
class Rule:
    """One version of the rule of (flow, role); exactly one of rate_bp / fixed_minor is set."""

    flow: Flow
    role: Role
    rate_bp: int | None
    fixed_minor: int | None
    effective_from: datetime
    version: int
    saved_shipping_minor: int = 0
    # The currency of the rule's amount (the fixed amount, or the saved shipping cost of the
    # fulfilling franchisee's share); "" for a plain rate, which applies in any currency.
    currency: str = ""

    @property
    def has_amount(self) -> bool:
        return self.fixed_minor is not None or self.role == Role.FULFILLING_FRANCHISEE

    def applies_in(self, currency: str) -> bool:
        """An amount in one currency is never paid on an order in another."""
        return not self.has_amount or self.currency == currency


def rule_in_force(
    rules: Sequence[Rule], flow: Flow, role: Role, at: datetime, currency: str | None = None
) -> Rule | None:
    """The newest version of (flow, role) whose effective time is not after ``at`` (and,
    when ``currency`` is given, that can be paid in it)."""
    candidates = [
        r
        for r in rules
        if r.flow == flow
        and r.role == role
        and r.effective_from <= at
        and (currency is None or r.applies_in(currency))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.effective_from, r.version))


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for numerator >= 0 and denominator > 0."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up needs numerator >= 0 and denominator > 0")
    return (2 * numerator + denominator) // (2 * denominator)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` (>= 0) over ``weights`` (>= 0) by the largest-remainder method.

    The parts sum exactly to ``total``; each part is within one minor unit of its exact
    proportional share; equal remainders go to the earlier weight. All-zero weights share
    equally.
    """
    if total < 0:
        raise ValueError("allocate needs a non-negative total")
    if not weights:
        return []
    if any(w < 0 for w in weights):
        raise ValueError("allocate needs non-negative weights")
    if sum(weights) == 0:
        weights = [1] * len(weights)
    weight_sum = sum(weights)
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:left]:
        floors[index] += 1
    return floors


@dataclass(frozen=True)
class Line:
    line_id: str
    # At least 1 (a line's returns are counted against it).
    quantity: int
    total_minor: int
    sku_code: str = ""

    @property
    def basis(self) -> int:
        # A line can never earn on a negative total (a mispriced line is not a debt).
        return max(0, self.total_minor)


@dataclass(frozen=True)
class CreditedGuide:
    """The guide credited with the customer and the unit the guide belongs to."""

    staff_id: str
    unit_id: str
    unit_is_store: bool
    unit_is_franchisee: bool
    # A store or dealer (a virtual guide may sit at HQ, province or city: no shop to credit).
    unit_sells: bool = True


@dataclass(frozen=True)
class FulfillingUnit:
    unit_id: str
    fulfilment_id: str
    is_franchisee: bool
    # The unit sits in the delivery address's city.
    same_city: bool
    # A distributor, franchisee or agent: credited as a DEALER; anything else as a STORE.
    is_dealer: bool

    def __post_init__(self) -> None:
        if self.is_franchisee and not self.is_dealer:
            raise ValueError("a franchisee is a dealer")


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    currency: str
    channel: Channel
    mode: Mode
    handover: Handover
    lines: tuple[Line, ...]
    completed_at: datetime
    guide: CreditedGuide | None = None
    # Known org units only (empty when the order names a unit we do not know).
    selling_unit: Beneficiary | None = None
    pickup_unit: Beneficiary | None = None
    fulfilling_by_line: Mapping[str, FulfillingUnit] = field(default_factory=dict)


def effective_mode(mode: Mode, handover: Handover) -> Mode:
    """An endless-aisle sale is, for the customer, a delivery, a pickup or a guide visit."""
    if mode != Mode.ENDLESS_AISLE:
        return mode
    return {
        Handover.DELIVERY: Mode.EXPRESS_DELIVERY,
        Handover.PICKUP_IN_SELLING_STORE: Mode.STORE_PICKUP,
        Handover.GUIDE: Mode.GUIDE_DELIVERY,
    }.get(handover, Mode.UNSPECIFIED)


def classify_flow(facts: OrderFacts) -> Flow:
    """Flows 1-2 are sales rung up in a store; 3-5 are online orders by how they reach the
    customer. A store sale without a credited guide counts as flow 1 (the store's own)."""
    if facts.channel == Channel.STORE:
        if facts.selling_unit is None:
            return Flow.UNSPECIFIED
        if facts.guide is None or facts.guide.unit_id == facts.selling_unit.beneficiary_id:
            return Flow.OWN_STORE
        return Flow.OTHER_STORE
    if facts.channel == Channel.UNSPECIFIED:
        return Flow.UNSPECIFIED
    mode = effective_mode(facts.mode, facts.handover)
    return {
        Mode.GUIDE_DELIVERY: Flow.GUIDE_DELIVERY,
        Mode.EXPRESS_DELIVERY: Flow.EXPRESS,
        Mode.SAME_CITY_DELIVERY: Flow.EXPRESS,
        Mode.STORE_PICKUP: Flow.STORE_PICKUP,
    }.get(mode, Flow.UNSPECIFIED)


@dataclass(frozen=True)
class Payout:
    """What one beneficiary earns in one role on an order, per line."""

    role: Role
    beneficiary: Beneficiary
    per_line: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.per_line.values())


@dataclass(frozen=True)
class CommissionPlan:
    flow: Flow
    payouts: tuple[Payout, ...]

    def role_total(self, role: Role) -> int:
        return sum(p.total for p in self.payouts if p.role == role)

    @property
    def total(self) -> int:
        return sum(p.total for p in self.payouts)


def _unit_beneficiary(unit_id: str, is_store: bool) -> Beneficiary:
    return Beneficiary(BeneficiaryKind.STORE if is_store else BeneficiaryKind.DEALER, unit_id)


def beneficiaries_by_line(facts: OrderFacts, flow: Flow, role: Role) -> dict[str, Beneficiary]:
    """Which beneficiary a role credits for each line (lines without one earn nothing)."""
    everyone: Beneficiary | None = None
    guide = facts.guide
    online = flow in (Flow.GUIDE_DELIVERY, Flow.EXPRESS, Flow.STORE_PICKUP)
    if role == Role.OWNING_GUIDE and guide is not None:
        everyone = Beneficiary(BeneficiaryKind.GUIDE, guide.staff_id)
    elif role == Role.SELLING_STORE:
        if flow in (Flow.OWN_STORE, Flow.OTHER_STORE):
            everyone = facts.selling_unit
        elif guide is not None and guide.unit_sells:
            everyone = _unit_beneficiary(guide.unit_id, guide.unit_is_store)
    elif role == Role.REFERRING_FRANCHISEE and online and guide and guide.unit_is_franchisee:
        everyone = Beneficiary(BeneficiaryKind.DEALER, guide.unit_id)
    elif role == Role.FULFILLING_STORE:
        if flow == Flow.STORE_PICKUP and facts.pickup_unit is not None:
            everyone = facts.pickup_unit
        else:
            return {
                line.line_id: _unit_beneficiary(unit.unit_id, not unit.is_dealer)
                for line in facts.lines
                if (unit := facts.fulfilling_by_line.get(line.line_id)) is not None
            }
    elif role == Role.FULFILLING_FRANCHISEE and facts.mode == Mode.SAME_CITY_DELIVERY:
        return {
            line.line_id: Beneficiary(BeneficiaryKind.DEALER, unit.unit_id)
            for line in facts.lines
            if (unit := facts.fulfilling_by_line.get(line.line_id)) is not None
            and unit.is_franchisee
            and unit.same_city
        }
    if everyone is None:
        return {}
    return {line.line_id: everyone for line in facts.lines}


def role_total(rule: Rule, lines: Sequence[Line], shipments: int) -> int:
    """A role's total on the lines it covers (before spreading over them)."""
    if rule.role == Role.FULFILLING_FRANCHISEE:
        return round_half_up(rule.saved_shipping_minor * (rule.rate_bp or 0) * shipments, 10_000)
    if rule.fixed_minor is not None:
        return rule.fixed_minor
    return round_half_up(sum(line.basis for line in lines) * (rule.rate_bp or 0), BASIS_POINTS)


def plan_commissions(facts: OrderFacts, rules: Sequence[Rule]) -> CommissionPlan:
    """Every role's earnings on a completed order under the rules in force at completion;
    a rule whose amount (fixed, or saved shipping cost) is in another currency than the
    order's is not in force for it."""
    flow = classify_flow(facts)
    if flow == Flow.UNSPECIFIED:
        return CommissionPlan(flow, ())
    payouts: list[Payout] = []
    for role in Role:
        rule = rule_in_force(rules, flow, role, facts.completed_at, facts.currency)
        if rule is None:
            continue
        credited = beneficiaries_by_line(facts, flow, role)
        lines = [line for line in facts.lines if line.line_id in credited]
        if not lines:
            continue
        shipments = len(
            {
                facts.fulfilling_by_line[line.line_id].fulfilment_id
                for line in lines
                if line.line_id in facts.fulfilling_by_line
            }
        )
        total = role_total(rule, lines, shipments)
        parts = allocate(total, [line.basis for line in lines])
        grouped: dict[Beneficiary, dict[str, int]] = {}
        for line, amount in zip(lines, parts, strict=True):
            grouped.setdefault(credited[line.line_id], {})[line.line_id] = amount
        payouts += [Payout(role, who, per_line) for who, per_line in grouped.items()]
    return CommissionPlan(flow, tuple(payouts))


@dataclass(frozen=True)
class PaidLine:
    """What a role paid on one line and how much of it has been taken back."""

    quantity: int
    paid_minor: int
    returned_quantity: int
    clawed_minor: int


def clawback_for_line(paid: PaidLine, returning_quantity: int) -> tuple[int, int]:
    """(amount to take back, new cumulative returned quantity) for a return of
    ``returning_quantity`` units of the line (capped at what is still out)."""
    if paid.quantity <= 0:
        raise ValueError("a paid line has a positive quantity")
    returned = min(paid.quantity, paid.returned_quantity + max(0, returning_quantity))
    target = round_half_up(paid.paid_minor * returned, paid.quantity)
    return max(0, min(paid.paid_minor, target) - paid.clawed_minor), returned
