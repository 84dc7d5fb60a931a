"""The ledger and ATP rules, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument
from services.inventory.domain.stock import (
    MAX_LEVEL,
    MAX_QUANTITY,
    MovementKind,
    StockLevel,
    apply_delta,
    available,
    channel_availability,
    client_key,
    count_difference,
    on_hand_delta,
    shown_key,
    validate_count,
    validate_movement,
)

quantities = st.integers(min_value=0, max_value=10_000)
movement = st.tuples(
    st.sampled_from(
        [MovementKind.RECEIPT, MovementKind.SALE, MovementKind.ADJUSTMENT, MovementKind.RETURN]
    ),
    st.integers(min_value=-50, max_value=50).filter(lambda q: q != 0),
)


@given(st.lists(st.one_of(movement, st.tuples(st.just(MovementKind.COUNT), quantities))))
def test_on_hand_is_always_the_sum_of_the_ledger_and_never_negative(steps):
    level = StockLevel("L", "S")
    ledger: list[int] = []
    for kind, amount in steps:
        if kind is MovementKind.COUNT:
            delta = count_difference(level, amount)
        else:
            delta = on_hand_delta(
                kind, abs(amount) if kind is not MovementKind.ADJUSTMENT else amount
            )
        try:
            level = apply_delta(level, delta)
        except FailedPrecondition:
            continue  # refused: nothing ledgered
        ledger.append(delta)
        assert level.on_hand == sum(ledger) >= 0
        if kind is MovementKind.COUNT:
            assert level.on_hand == amount


def test_sale_takes_out_and_receipt_puts_in():
    assert on_hand_delta(MovementKind.SALE, 3) == -3
    assert on_hand_delta(MovementKind.RECEIPT, 3) == 3
    assert on_hand_delta(MovementKind.RETURN, 2) == 2
    assert on_hand_delta(MovementKind.ADJUSTMENT, -4) == -4


@pytest.mark.parametrize(
    ("kind", "quantity", "field"),
    [
        (MovementKind.RECEIPT, 0, "quantity"),
        (MovementKind.SALE, -1, "quantity"),
        (MovementKind.ADJUSTMENT, 0, "quantity"),
        (MovementKind.COUNT, 5, "kind"),
        (MovementKind.TRANSFER_OUT, 5, "kind"),
        (None, 5, "kind"),
    ],
)
def test_malformed_movements_name_the_field(kind, quantity, field):
    with pytest.raises(InvalidArgument) as caught:
        validate_movement(kind, quantity, "", "key", prefix="rows[0].")
    assert [v.field for v in caught.value.violations] == [f"rows[0].{field}"]


def test_count_below_zero_is_refused():
    with pytest.raises(InvalidArgument) as caught:
        validate_count(-1, "", "key")
    assert [v.field for v in caught.value.violations] == ["counted_quantity"]
    validate_count(0, "", "key")


@given(quantities, quantities, quantities)
def test_available_is_never_negative_and_never_more_than_free_stock(on_hand, reserved, safety):
    atp = available(on_hand, reserved, safety)
    assert 0 <= atp <= max(0, on_hand - reserved)
    assert atp == max(0, on_hand - reserved - safety)


levels = st.lists(
    st.builds(
        StockLevel,
        st.text(min_size=1, max_size=3),
        st.just("S"),
        quantities,
        quantities,
        quantities,
        quantities,
    ),
    max_size=20,
)


@given(levels, st.one_of(st.none(), quantities))
def test_channel_atp_sums_each_location_and_the_quota_only_caps(levels, quota):
    result = channel_availability("S", levels, quota)
    uncapped = sum(level.available for level in levels)
    assert result.available == (uncapped if quota is None else min(uncapped, quota))
    assert result.on_hand == sum(level.on_hand for level in levels)
    # One location's surplus never covers another's safety shortfall.
    assert result.available >= 0


def test_a_shortfall_at_one_location_does_not_eat_another_locations_atp():
    result = channel_availability(
        "S",
        [StockLevel("A", "S", on_hand=1, safety_stock=3), StockLevel("B", "S", on_hand=5)],
        None,
    )
    assert result.available == 5


def test_no_level_holds_more_than_the_bound_so_channel_sums_fit_int64():
    near = StockLevel("L", "S", on_hand=MAX_LEVEL - 5)
    assert apply_delta(near, 5).on_hand == MAX_LEVEL
    with pytest.raises(FailedPrecondition, match="at most"):
        apply_delta(near, 6)
    # every figure of a level is bounded, so even a million full locations sum within int64
    assert 10**6 * (MAX_LEVEL + MAX_QUANTITY + MAX_LEVEL) < 2**63 - 1


def test_reference_has_a_length_limit():
    with pytest.raises(InvalidArgument) as caught:
        validate_movement(MovementKind.RECEIPT, 1, "", "k", reference="r" * 201)
    assert [v.field for v in caught.value.violations] == ["reference"]
    validate_movement(MovementKind.RECEIPT, 1, "", "k", reference="r" * 200)


SERVICE_KEYS = st.one_of(
    st.builds(lambda o, loc, s: f"reservation:{o}:{loc}:{s}", st.text(), st.text(), st.text()),
    st.builds(lambda t, s, d: f"transfer:{t}:{s}:{d}", st.text(), st.text(), st.text()),
    st.builds(lambda r: f"request:RecordMovement:{r}", st.text()),
    st.builds(lambda r, n: f"import:{r}:{n}", st.text(), st.integers(1)),
)


@given(st.text(max_size=200), SERVICE_KEYS)
def test_a_senders_key_never_collides_with_a_key_the_service_makes(sent, made):
    assert client_key(sent) != made
    assert shown_key(client_key(sent)) == sent
    assert shown_key(made) == made
