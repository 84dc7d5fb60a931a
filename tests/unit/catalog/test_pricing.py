"""The price rules: rounding, windows and overlaps, precedence, the same-price policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument, Validator
from services.catalog.domain.pricing import (
    MAX_AMOUNT_MINOR,
    ChannelRule,
    Money,
    PriceInputs,
    PriceSource,
    PromotionPrice,
    Window,
    check_same_price,
    currency_clash,
    first_overlap,
    percentage_of,
    resolve,
    sku_currencies,
    validate_channel_rule,
    validate_money,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR)
basis_points = st.integers(min_value=1, max_value=100_000)
instants = st.integers(min_value=-(10**6), max_value=10**6).map(lambda s: T0 + timedelta(seconds=s))


def cny(amount: int) -> Money:
    return Money("CNY", amount)


def inputs(**overrides: object) -> PriceInputs:
    base: dict[str, object] = {
        "list_price": cny(10000),
        "regional_price": None,
        "channel_rule": None,
        "promotions": (),
        "same_price_policy": False,
    }
    base.update(overrides)
    return PriceInputs(**base)  # type: ignore[arg-type]


# --- rounding in minor units -------------------------------------------------------------


@given(amounts, basis_points)
def test_percentage_is_the_exact_value_rounded_half_up(amount, bp):
    exact = Fraction(amount * bp, 10_000)
    got = percentage_of(amount, bp)
    assert exact - Fraction(1, 2) < got <= exact + Fraction(1, 2)
    # half up: a result exactly halfway between two minor units goes to the upper one
    if exact.denominator == 2:
        assert got == exact + Fraction(1, 2)


@given(amounts)
def test_a_hundred_percent_is_the_list_price(amount):
    assert percentage_of(amount, 10_000) == amount


@given(amounts, basis_points, basis_points)
def test_a_higher_percentage_never_gives_a_lower_price(amount, bp1, bp2):
    low, high = sorted((bp1, bp2))
    assert percentage_of(amount, low) <= percentage_of(amount, high)


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [
        (999, 5000, 500),  # 499.5 → 500 (half up)
        (997, 5000, 499),  # 498.5 → 499
        (1, 4999, 0),  # 0.4999 → 0
        (1, 5000, 1),  # 0.5 → 1
        (19900, 8500, 16915),  # 16915.0
        (19999, 8888, 17775),  # 17775.1112 → 17775
    ],
)
def test_percentage_examples(amount, bp, expected):
    assert percentage_of(amount, bp) == expected


def test_percentage_rule_keeps_the_list_currency():
    assert ChannelRule(percentage_bp=9000).apply(Money("USD", 1000)) == Money("USD", 900)


# --- windows: [start, end) ---------------------------------------------------------------


@given(instants, st.integers(min_value=1, max_value=10**6))
def test_window_start_is_inclusive_and_end_exclusive(start, length):
    end = start + timedelta(seconds=length)
    w = Window(start, end)
    assert w.contains(start)
    assert w.contains(end - US)
    assert not w.contains(end)
    assert not w.contains(start - US)


def _window(a: datetime, b: datetime) -> Window:
    return Window(min(a, b), max(a, b) + timedelta(seconds=1))


@given(instants, instants, instants, instants)
def test_overlap_is_symmetric_and_means_a_shared_instant(a, b, c, d):
    w1, w2 = _window(a, b), _window(c, d)
    assert w1.overlaps(w2) == w2.overlaps(w1)
    assert w1.start is not None and w1.end is not None and w2.start is not None
    assert w2.end is not None
    shared = max(w1.start, w2.start)
    assert w1.overlaps(w2) == (w1.contains(shared) and w2.contains(shared))


@given(instants, st.integers(1, 10**5), st.integers(1, 10**5))
def test_back_to_back_windows_do_not_overlap(start, first, second):
    middle = start + timedelta(seconds=first)
    assert not Window(start, middle).overlaps(Window(middle, middle + timedelta(seconds=second)))
    assert Window(start, middle + US).overlaps(Window(middle, middle + timedelta(seconds=second)))


def test_open_windows():
    assert Window(None, None).contains(T0)
    assert Window(T0, None).overlaps(Window(None, T0 + US))
    assert not Window(T0, None).overlaps(Window(None, T0))
    assert not Window(T0, T0).is_well_formed()


def test_first_overlap_names_the_clashing_window():
    existing = [
        ("A", Window(T0, T0 + timedelta(days=1))),
        ("B", Window(T0 + timedelta(days=2), None)),
    ]
    assert first_overlap(Window(T0 + timedelta(days=1), T0 + timedelta(days=2)), existing) is None
    assert first_overlap(Window(T0 + timedelta(days=3), T0 + timedelta(days=4)), existing) == "B"


# --- resolution precedence ---------------------------------------------------------------


def test_list_price_when_nothing_else():
    r = resolve(inputs(), T0)
    assert (r.price, r.source) == (cny(10000), PriceSource.LIST)


def test_regional_beats_list():
    r = resolve(inputs(regional_price=cny(9000)), T0)
    assert (r.price, r.source) == (cny(9000), PriceSource.REGIONAL)


def test_channel_rule_beats_regional():
    r = resolve(inputs(regional_price=cny(9000), channel_rule=ChannelRule(percentage_bp=8000)), T0)
    assert (r.price, r.source) == (cny(8000), PriceSource.CHANNEL_PERCENTAGE)
    r = resolve(inputs(channel_rule=ChannelRule(fixed=cny(7777))), T0)
    assert (r.price, r.source) == (cny(7777), PriceSource.CHANNEL_FIXED)


def test_same_price_policy_ignores_channel_rules():
    r = resolve(
        inputs(
            channel_rule=ChannelRule(fixed=cny(7777)),
            same_price_policy=True,
            regional_price=cny(9000),
        ),
        T0,
    )
    assert (r.price, r.source) == (cny(9000), PriceSource.REGIONAL)
    assert "same-price" in r.explanation


@given(st.integers(-100, 100))
def test_promotion_applies_exactly_inside_its_window(offset_seconds):
    window = Window(T0, T0 + timedelta(seconds=50))
    at = T0 + timedelta(seconds=offset_seconds)
    promo = PromotionPrice("P1", window, cny(5000))
    r = resolve(
        inputs(promotions=[promo], same_price_policy=True, channel_rule=ChannelRule(fixed=cny(1))),
        at,
    )
    if window.contains(at):
        assert (r.price, r.source, r.promotion_id) == (cny(5000), PriceSource.PROMOTION, "P1")
    else:
        assert (r.price, r.source) == (cny(10000), PriceSource.LIST)


def test_promotion_edges():
    promo = PromotionPrice("P1", Window(T0, T0 + timedelta(hours=1)), cny(5000))
    at = {
        "just before start": T0 - US,
        "start": T0,
        "just before end": T0 + timedelta(hours=1) - US,
        "end": T0 + timedelta(hours=1),
    }
    got = {k: resolve(inputs(promotions=[promo]), t).source for k, t in at.items()}
    assert got == {
        "just before start": PriceSource.LIST,
        "start": PriceSource.PROMOTION,
        "just before end": PriceSource.PROMOTION,
        "end": PriceSource.LIST,
    }


def test_no_price_is_a_failed_precondition():
    with pytest.raises(FailedPrecondition):
        resolve(inputs(list_price=None), T0)
    with pytest.raises(FailedPrecondition):
        resolve(inputs(list_price=None, channel_rule=ChannelRule(percentage_bp=9000)), T0)
    assert resolve(
        inputs(list_price=None, channel_rule=ChannelRule(fixed=cny(5))), T0
    ).price == cny(5)


# --- the same-price policy ---------------------------------------------------------------


def test_same_price_accepts_a_rule_equal_to_every_store_price():
    check_same_price(ChannelRule(fixed=cny(10000)), cny(10000), [cny(10000)])
    check_same_price(ChannelRule(percentage_bp=10_000), cny(10000), [])


@pytest.mark.parametrize(
    ("rule", "regional"),
    [
        (ChannelRule(fixed=cny(9999)), []),
        (ChannelRule(percentage_bp=9000), []),
        (ChannelRule(fixed=cny(10000)), [cny(9000)]),
        (ChannelRule(fixed=Money("USD", 10000)), []),
    ],
)
def test_same_price_refuses_a_differing_rule_with_the_reason(rule, regional):
    with pytest.raises(FailedPrecondition, match="same price online and offline"):
        check_same_price(rule, cny(10000), regional)


@given(amounts, amounts)
def test_same_price_accepts_exactly_the_equal_fixed_prices(list_amount, rule_amount):
    rule = ChannelRule(fixed=cny(rule_amount))
    if rule_amount == list_amount:
        check_same_price(rule, cny(list_amount), [])
    else:
        with pytest.raises(FailedPrecondition):
            check_same_price(rule, cny(list_amount), [])


# --- validation --------------------------------------------------------------------------


def _violations(fn) -> list[str]:
    v = Validator()
    fn(v)
    with pytest.raises(InvalidArgument) as caught:
        v.raise_if_any()
    return [x.field for x in caught.value.violations]


def test_money_validation_names_the_field():
    assert _violations(lambda v: validate_money(v, "p", Money("cny", 1), required=True)) == [
        "p.currency_code"
    ]
    assert _violations(lambda v: validate_money(v, "p", Money("CNY", -1), required=True)) == [
        "p.amount_minor"
    ]
    assert _violations(lambda v: validate_money(v, "p", None, required=True)) == ["p"]


def test_rule_needs_exactly_one_form():
    assert _violations(lambda v: validate_channel_rule(v, "rule", ChannelRule())) == ["rule"]
    assert _violations(
        lambda v: validate_channel_rule(v, "rule", ChannelRule(percentage_bp=0))
    ) == ["rule.percentage_of_list_bp"]


# --- properties over the whole resolution ----------------------------------------------

rules = st.one_of(
    st.none(),
    amounts.map(lambda a: ChannelRule(fixed=cny(a))),
    basis_points.map(lambda bp: ChannelRule(percentage_bp=bp)),
)


@given(
    st.one_of(st.none(), amounts),
    st.one_of(st.none(), amounts),
    rules,
    st.booleans(),
    st.one_of(st.none(), st.tuples(instants, st.integers(1, 10**5), amounts)),
    instants,
)
def test_resolution_follows_the_precedence_and_names_the_rule(
    list_amount, regional_amount, rule, same_price, promo, at
):
    promotions = []
    if promo is not None:
        start, length, promo_amount = promo
        window = Window(start, start + timedelta(seconds=length))
        promotions.append(PromotionPrice("P", window, cny(promo_amount)))
    given_inputs = inputs(
        list_price=None if list_amount is None else cny(list_amount),
        regional_price=None if regional_amount is None else cny(regional_amount),
        channel_rule=rule,
        same_price_policy=same_price,
        promotions=promotions,
    )
    active = [p for p in promotions if p.window.contains(at)]
    by_rule = rule.apply(given_inputs.list_price) if rule is not None else None
    if active:
        expected = (active[0].price, PriceSource.PROMOTION)
    elif by_rule is not None and not same_price:
        assert rule is not None
        expected = (by_rule, rule.source)
    elif regional_amount is not None:
        expected = (cny(regional_amount), PriceSource.REGIONAL)
    elif list_amount is not None:
        expected = (cny(list_amount), PriceSource.LIST)
    else:
        with pytest.raises(FailedPrecondition):
            resolve(given_inputs, at)
        return
    got = resolve(given_inputs, at)
    assert (got.price, got.source) == expected
    assert got.price.amount_minor >= 0


@given(
    st.lists(st.integers(1, 10**4), min_size=1, max_size=8),
    st.integers(-(10**4), 10**5),
)
def test_back_to_back_promotions_never_both_apply_and_the_right_one_wins(lengths, offset):
    edges = [T0]
    for length in lengths:
        edges.append(edges[-1] + timedelta(seconds=length))
    promotions = [
        PromotionPrice(f"P{i}", Window(a, b), cny(100 + i))
        for i, (a, b) in enumerate(itertools.pairwise(edges))
    ]
    for i, p in enumerate(promotions):
        others = [(q.promotion_id, q.window) for q in promotions if q is not p]
        assert first_overlap(p.window, others) is None, i
    at = T0 + timedelta(seconds=offset)
    containing = [p for p in promotions if p.window.contains(at)]
    assert len(containing) <= 1
    got = resolve(inputs(promotions=promotions), at)
    if containing:
        assert got.promotion_id == containing[0].promotion_id
    else:
        assert got.source is PriceSource.LIST


currencies = st.sampled_from(["CNY", "USD", "EUR", "HKD"])


@given(currencies, st.one_of(st.none(), currencies), st.sets(currencies, max_size=3))
def test_a_price_is_accepted_exactly_when_it_keeps_the_sku_in_one_currency(
    currency, list_currency, others
):
    list_price = None if list_currency is None else Money(list_currency, 100)
    priced_in = sku_currencies(list_price, others)
    clash = currency_clash(currency, priced_in)
    if priced_in <= {currency}:
        assert clash is None
    else:
        assert clash in priced_in and clash != currency
