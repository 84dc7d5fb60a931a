"""Commission arithmetic: flows, roles, rounding and claw-backs."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.distribution.domain.commission_rules import (
    NOT_CLAWED_BACK,
    Beneficiary,
    BeneficiaryKind,
    Channel,
    CreditedGuide,
    Flow,
    FulfillingUnit,
    Handover,
    Line,
    Mode,
    OrderFacts,
    PaidLine,
    Role,
    Rule,
    allocate,
    classify_flow,
    clawback_for_line,
    plan_commissions,
    role_total,
    round_half_up,
    rule_in_force,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GUIDE = CreditedGuide("G1", "S1", unit_is_store=True, unit_is_franchisee=False)
S1 = Beneficiary(BeneficiaryKind.STORE, "S1")
S2 = Beneficiary(BeneficiaryKind.STORE, "S2")


def rate(flow: Flow, role: Role, bp: int, version: int = 1, at: datetime = T0) -> Rule:
    return Rule(flow, role, bp, None, at, version)


def facts(**overrides: object) -> OrderFacts:
    base: dict[str, object] = {
        "order_id": "O1",
        "currency": "CNY",
        "channel": Channel.STORE,
        "mode": Mode.STORE_SALE,
        "handover": Handover.UNSPECIFIED,
        "lines": (Line("L1", 1, 10_000), Line("L2", 2, 10_001)),
        "completed_at": T0 + timedelta(days=1),
        "guide": GUIDE,
        "selling_unit": S1,
    }
    base.update(overrides)
    return OrderFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "flow"),
    [
        ({}, Flow.OWN_STORE),
        ({"selling_unit": S2}, Flow.OTHER_STORE),
        ({"guide": None}, Flow.OWN_STORE),
        ({"selling_unit": None}, Flow.UNSPECIFIED),
        ({"channel": Channel.OWN_ONLINE, "mode": Mode.GUIDE_DELIVERY}, Flow.GUIDE_DELIVERY),
        ({"channel": Channel.OWN_ONLINE, "mode": Mode.EXPRESS_DELIVERY}, Flow.EXPRESS),
        ({"channel": Channel.MARKETPLACE, "mode": Mode.SAME_CITY_DELIVERY}, Flow.EXPRESS),
        ({"channel": Channel.OWN_ONLINE, "mode": Mode.STORE_PICKUP}, Flow.STORE_PICKUP),
        (
            {
                "channel": Channel.OWN_ONLINE,
                "mode": Mode.ENDLESS_AISLE,
                "handover": Handover.GUIDE,
            },
            Flow.GUIDE_DELIVERY,
        ),
        ({"channel": Channel.OWN_ONLINE, "mode": Mode.STORE_SALE}, Flow.UNSPECIFIED),
        ({"channel": Channel.UNSPECIFIED}, Flow.UNSPECIFIED),
        ({"mode": Mode.ENDLESS_AISLE, "selling_unit": S2}, Flow.OTHER_STORE),
    ],
)
def test_flow_classification(overrides, flow):
    assert classify_flow(facts(**overrides)) == flow


def test_rate_rounds_half_up_on_the_order_then_spreads_exactly():
    # 2% of 20_001 = 400.02 -> 400; split 10_000 : 10_001.
    plan = plan_commissions(facts(), [rate(Flow.OWN_STORE, Role.OWNING_GUIDE, 200)])
    assert plan.flow == Flow.OWN_STORE
    [payout] = plan.payouts
    assert payout.beneficiary == Beneficiary(BeneficiaryKind.GUIDE, "G1")
    assert payout.total == 400
    assert payout.per_line == {"L1": 200, "L2": 200}


def test_other_store_pays_guide_and_the_selling_store():
    plan = plan_commissions(
        facts(selling_unit=S2),
        [
            rate(Flow.OTHER_STORE, Role.OWNING_GUIDE, 300),
            rate(Flow.OTHER_STORE, Role.SELLING_STORE, 100),
            rate(Flow.OWN_STORE, Role.OWNING_GUIDE, 999),
        ],
    )
    assert plan.flow == Flow.OTHER_STORE
    assert {(p.role, p.beneficiary.beneficiary_id, p.total) for p in plan.payouts} == {
        (Role.OWNING_GUIDE, "G1", 600),
        (Role.SELLING_STORE, "S2", 200),
    }


def test_fixed_amount_is_spread_over_lines_by_largest_remainder():
    rule = Rule(Flow.OWN_STORE, Role.SELLING_STORE, None, 100, T0, 1, currency="CNY")
    plan = plan_commissions(
        facts(lines=(Line("A", 1, 1), Line("B", 1, 1), Line("C", 1, 1))), [rule]
    )
    assert plan.payouts[0].per_line == {"A": 34, "B": 33, "C": 33}


def test_fulfilling_store_is_paid_per_line_of_each_fulfilment():
    fulfilling = {
        "L1": FulfillingUnit("S1", "F1", is_franchisee=False, same_city=True, is_dealer=False),
        "L2": FulfillingUnit("S2", "F2", is_franchisee=False, same_city=False, is_dealer=False),
    }
    plan = plan_commissions(
        facts(
            channel=Channel.OWN_ONLINE, mode=Mode.EXPRESS_DELIVERY, fulfilling_by_line=fulfilling
        ),
        [rate(Flow.EXPRESS, Role.FULFILLING_STORE, 100)],
    )
    assert {p.beneficiary.beneficiary_id: p.total for p in plan.payouts} == {"S1": 100, "S2": 100}


def test_franchisee_rebates_for_referral_and_same_city_shipping_share():
    franchisee_guide = CreditedGuide("G9", "FR1", unit_is_store=False, unit_is_franchisee=True)
    fulfilling = {
        "L1": FulfillingUnit("FR1", "F1", is_franchisee=True, same_city=True, is_dealer=True),
        "L2": FulfillingUnit("FR1", "F1", is_franchisee=True, same_city=True, is_dealer=True),
    }
    shipping = Rule(Flow.EXPRESS, Role.FULFILLING_FRANCHISEE, 5000, None, T0, 1, 1_200, "CNY")
    plan = plan_commissions(
        facts(
            channel=Channel.OWN_ONLINE,
            mode=Mode.SAME_CITY_DELIVERY,
            guide=franchisee_guide,
            fulfilling_by_line=fulfilling,
        ),
        [rate(Flow.EXPRESS, Role.REFERRING_FRANCHISEE, 500), shipping],
    )
    # 5% of 20_001 = 1000.05 -> 1000; one shipment saves 12.00, half of it is 6.00.
    assert plan.role_total(Role.REFERRING_FRANCHISEE) == 1000
    assert plan.role_total(Role.FULFILLING_FRANCHISEE) == 600


def test_rule_version_in_force_at_completion():
    old = rate(Flow.OWN_STORE, Role.OWNING_GUIDE, 100, 1, T0)
    new = rate(Flow.OWN_STORE, Role.OWNING_GUIDE, 200, 2, T0 + timedelta(days=10))
    assert (
        rule_in_force([old, new], Flow.OWN_STORE, Role.OWNING_GUIDE, T0 + timedelta(days=1)) is old
    )
    assert (
        rule_in_force([old, new], Flow.OWN_STORE, Role.OWNING_GUIDE, T0 + timedelta(days=10)) is new
    )
    assert (
        rule_in_force([old, new], Flow.OWN_STORE, Role.OWNING_GUIDE, T0 - timedelta(days=1)) is None
    )


def test_negative_line_total_earns_nothing():
    plan = plan_commissions(
        facts(lines=(Line("L1", 1, -500), Line("L2", 1, 1000))),
        [rate(Flow.OWN_STORE, Role.OWNING_GUIDE, 1000)],
    )
    assert plan.payouts[0].per_line == {"L1": 0, "L2": 100}


def test_clawback_in_parts_takes_back_exactly_what_was_paid():
    line = PaidLine(quantity=3, paid_minor=100, returned_quantity=0, clawed_minor=0)
    first, returned = clawback_for_line(line, 1)
    assert (first, returned) == (33, 1)
    line = PaidLine(3, 100, returned, first)
    second, returned = clawback_for_line(line, 1)
    assert (second, returned) == (34, 2)
    line = PaidLine(3, 100, returned, first + second)
    third, returned = clawback_for_line(line, 5)
    assert (third, returned) == (33, 3)
    assert first + second + third == 100


def test_allocate_edges():
    assert allocate(0, [1, 2]) == [0, 0]
    assert allocate(5, [0, 0]) == [3, 2]
    assert allocate(7, []) == []
    with pytest.raises(ValueError):
        allocate(-1, [1])
    assert round_half_up(5, 10) == 1
    assert round_half_up(4, 10) == 0


amounts = st.integers(min_value=0, max_value=10**9)


@given(
    total=amounts,
    weights=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=30),
)
def test_allocation_sums_to_total_and_stays_fair(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    effective = weights if sum(weights) else [1] * len(weights)
    for part, weight in zip(parts, effective, strict=True):
        exact = total * weight / sum(effective)
        assert abs(part - exact) < 1


lines_strategy = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=20), st.integers(min_value=-1000, max_value=10**7)
    ),
    min_size=1,
    max_size=12,
)
rule_strategy = st.one_of(
    st.integers(min_value=0, max_value=10_000).map(
        lambda bp: Rule(Flow.OWN_STORE, Role.OWNING_GUIDE, bp, None, T0, 1)
    ),
    st.integers(min_value=0, max_value=10**6).map(
        lambda fixed: Rule(Flow.OWN_STORE, Role.OWNING_GUIDE, None, fixed, T0, 1, currency="CNY")
    ),
)


@given(raw_lines=lines_strategy, rule=rule_strategy)
def test_plan_is_never_negative_and_lines_sum_to_the_role_total(raw_lines, rule):
    lines = tuple(Line(f"L{i}", q, t) for i, (q, t) in enumerate(raw_lines))
    plan = plan_commissions(facts(lines=lines), [rule])
    assert plan.total >= 0
    [payout] = plan.payouts
    assert all(amount >= 0 for amount in payout.per_line.values())
    expected = (
        rule.fixed_minor
        if rule.fixed_minor is not None
        else round_half_up(sum(max(0, t) for _, t in raw_lines) * (rule.rate_bp or 0), 10_000)
    )
    assert payout.total == expected


@given(
    quantity=st.integers(min_value=1, max_value=50),
    paid=st.integers(min_value=0, max_value=10**8),
    returns=st.lists(st.integers(min_value=-2, max_value=60), max_size=10),
)
def test_clawbacks_never_exceed_what_was_paid(quantity, paid, returns):
    line = PaidLine(quantity, paid, 0, 0)
    for returning in returns:
        amount, returned = clawback_for_line(line, returning)
        assert amount >= 0
        line = PaidLine(quantity, paid, returned, line.clawed_minor + amount)
        assert line.clawed_minor <= paid
        # What has come back is exactly the returned share, rounded half up.
        assert line.clawed_minor == round_half_up(paid * returned, quantity)
    amount, returned = clawback_for_line(line, quantity)
    assert line.clawed_minor + amount == paid


def test_virtual_guide_above_the_stores_earns_but_credits_no_shop():
    virtual = CreditedGuide(
        "V1", "HQ", unit_is_store=False, unit_is_franchisee=False, unit_sells=False
    )
    plan = plan_commissions(
        facts(
            guide=virtual, channel=Channel.OWN_ONLINE, mode=Mode.EXPRESS_DELIVERY, selling_unit=None
        ),
        [rate(Flow.EXPRESS, Role.OWNING_GUIDE, 100), rate(Flow.EXPRESS, Role.SELLING_STORE, 100)],
    )
    assert [(p.role, p.beneficiary.beneficiary_id) for p in plan.payouts] == [
        (Role.OWNING_GUIDE, "V1")
    ]


def test_a_dealer_fulfilling_a_line_is_credited_as_a_dealer_not_a_store():
    fulfilling = {
        "L1": FulfillingUnit("D1", "F1", is_franchisee=False, same_city=False, is_dealer=True),
        "L2": FulfillingUnit("S2", "F2", is_franchisee=False, same_city=False, is_dealer=False),
    }
    plan = plan_commissions(
        facts(
            channel=Channel.OWN_ONLINE, mode=Mode.EXPRESS_DELIVERY, fulfilling_by_line=fulfilling
        ),
        [rate(Flow.EXPRESS, Role.FULFILLING_STORE, 100)],
    )
    assert {p.beneficiary for p in plan.payouts} == {
        Beneficiary(BeneficiaryKind.DEALER, "D1"),
        Beneficiary(BeneficiaryKind.STORE, "S2"),
    }
    with pytest.raises(ValueError):
        FulfillingUnit("FR", "F", is_franchisee=True, same_city=True, is_dealer=False)


def test_a_rule_amount_in_another_currency_is_not_paid():
    franchisee_guide = CreditedGuide("G9", "FR1", unit_is_store=False, unit_is_franchisee=True)
    fulfilling = {
        "L1": FulfillingUnit("FR1", "F1", is_franchisee=True, same_city=True, is_dealer=True),
        "L2": FulfillingUnit("FR1", "F1", is_franchisee=True, same_city=True, is_dealer=True),
    }
    shipping_cny = Rule(
        Flow.EXPRESS, Role.FULFILLING_FRANCHISEE, 5000, None, T0, 1, 1_200, currency="CNY"
    )
    fixed_cny = Rule(Flow.EXPRESS, Role.SELLING_STORE, None, 300, T0, 1, currency="CNY")
    referral = rate(Flow.EXPRESS, Role.REFERRING_FRANCHISEE, 500)
    rules = [shipping_cny, fixed_cny, referral]

    def paid(currency: str) -> dict[Role, int]:
        plan = plan_commissions(
            facts(
                currency=currency,
                channel=Channel.OWN_ONLINE,
                mode=Mode.SAME_CITY_DELIVERY,
                guide=franchisee_guide,
                fulfilling_by_line=fulfilling,
            ),
            rules,
        )
        return {role: plan.role_total(role) for role in {p.role for p in plan.payouts}}

    assert paid("CNY") == {
        Role.FULFILLING_FRANCHISEE: 600,
        Role.SELLING_STORE: 300,
        Role.REFERRING_FRANCHISEE: 1000,
    }
    # A plain rate applies in any currency; amounts in CNY are not paid on a USD order.
    assert paid("USD") == {Role.REFERRING_FRANCHISEE: 1000}
    # An older version in the order's currency is the one in force for it.
    shipping_usd = Rule(
        Flow.EXPRESS, Role.FULFILLING_FRANCHISEE, 5000, None, T0, 2, 2_000, currency="USD"
    )
    assert (
        rule_in_force(
            [shipping_cny, shipping_usd], Flow.EXPRESS, Role.FULFILLING_FRANCHISEE, T0, "CNY"
        )
        is shipping_cny
    )


# -- the whole plan: several roles, several beneficiaries ----------------------------------

UNITS = {
    "S1": (False, False),  # (is_franchisee, is_dealer)
    "S2": (False, False),
    "FR1": (True, True),
    "D1": (False, True),
}
GUIDES = {
    "store": CreditedGuide("G1", "S1", unit_is_store=True, unit_is_franchisee=False),
    "franchisee": CreditedGuide("G9", "FR1", unit_is_store=False, unit_is_franchisee=True),
    "distributor": CreditedGuide("GD", "D1", unit_is_store=False, unit_is_franchisee=False),
}
amount_rule = st.one_of(
    st.tuples(st.just("rate"), st.integers(min_value=0, max_value=10_000)),
    st.tuples(st.just("fixed"), st.integers(min_value=0, max_value=10**6)),
)


@st.composite
def orders_and_rules(draw: st.DrawFn) -> tuple[OrderFacts, list[Rule]]:
    raw = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=1, max_value=9),
                st.integers(min_value=-500, max_value=10**6),
                st.sampled_from([*UNITS, None]),
                st.integers(min_value=1, max_value=3),
            ),
            min_size=1,
            max_size=8,
        )
    )
    lines = tuple(Line(f"L{i}", q, t) for i, (q, t, _, _) in enumerate(raw))
    fulfilling = {
        f"L{i}": FulfillingUnit(
            unit,
            f"F{shipment}-{unit}",
            is_franchisee=UNITS[unit][0],
            same_city=draw(st.booleans()),
            is_dealer=UNITS[unit][1],
        )
        for i, (_, _, unit, shipment) in enumerate(raw)
        if unit is not None
    }
    channel, mode = draw(
        st.sampled_from(
            [
                (Channel.STORE, Mode.STORE_SALE),
                (Channel.OWN_ONLINE, Mode.EXPRESS_DELIVERY),
                (Channel.OWN_ONLINE, Mode.SAME_CITY_DELIVERY),
                (Channel.MARKETPLACE, Mode.GUIDE_DELIVERY),
                (Channel.OWN_ONLINE, Mode.STORE_PICKUP),
            ]
        )
    )
    order = facts(
        lines=lines,
        channel=channel,
        mode=mode,
        guide=draw(st.sampled_from([*GUIDES.values(), None])),
        selling_unit=draw(st.sampled_from([S1, S2, Beneficiary(BeneficiaryKind.DEALER, "D1")])),
        pickup_unit=draw(st.sampled_from([S2, None])),
        fulfilling_by_line=fulfilling,
    )
    rules = []
    for flow in (f for f in Flow if f != Flow.UNSPECIFIED):
        for role in Role:
            kind, value = draw(amount_rule)
            if role == Role.FULFILLING_FRANCHISEE:
                saved = draw(st.integers(min_value=1, max_value=10**5))
                rules.append(Rule(flow, role, value % 10_001, None, T0, 1, saved, "CNY"))
            elif kind == "rate":
                rules.append(Rule(flow, role, value, None, T0, 1))
            else:
                rules.append(Rule(flow, role, None, value, T0, 1, currency="CNY"))
    return order, rules


@given(
    case=orders_and_rules(),
    returns=st.lists(
        st.tuples(st.integers(min_value=0, max_value=7), st.integers(min_value=0, max_value=9)),
        max_size=10,
    ),
)
def test_a_plan_with_every_role_sums_and_clawbacks_stay_within_what_each_was_paid(case, returns):
    order, rules = case
    plan = plan_commissions(order, rules)
    # Every role's amounts add up to the plan's total, and none is negative.
    assert plan.total == sum(plan.role_total(role) for role in Role)
    assert all(amount >= 0 for p in plan.payouts for amount in p.per_line.values())
    # Rounding: a role's lines, over all its beneficiaries, sum exactly to the role's total.
    for role in {p.role for p in plan.payouts}:
        rule = rule_in_force(rules, plan.flow, role, order.completed_at, order.currency)
        assert rule is not None
        covered = [
            line
            for line in order.lines
            if any(line.line_id in p.per_line for p in plan.payouts if p.role == role)
        ]
        shipments = len(
            {
                order.fulfilling_by_line[line.line_id].fulfilment_id
                for line in covered
                if line.line_id in order.fulfilling_by_line
            }
        )
        assert plan.role_total(role) == role_total(rule, covered, shipments)
    # Returns in any order and size never take back more than a beneficiary was paid.
    quantities = {line.line_id: line.quantity for line in order.lines}
    state = {
        (p.role, p.beneficiary, line_id): PaidLine(quantities[line_id], amount, 0, 0)
        for p in plan.payouts
        for line_id, amount in p.per_line.items()
    }
    for index, quantity in returns:
        line_id = f"L{index}"
        for key, paid in list(state.items()):
            if key[2] != line_id or key[0] in NOT_CLAWED_BACK:
                continue
            amount, returned = clawback_for_line(paid, quantity)
            assert amount >= 0
            state[key] = PaidLine(
                paid.quantity, paid.paid_minor, returned, paid.clawed_minor + amount
            )
    paid_by: dict[Beneficiary, int] = defaultdict(int)
    clawed_by: dict[Beneficiary, int] = defaultdict(int)
    for (_role, who, _line), line in state.items():
        paid_by[who] += line.paid_minor
        clawed_by[who] += line.clawed_minor
    assert all(0 <= clawed_by[who] <= paid_by[who] for who in paid_by)
