"""Reservation and transfer rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument
from services.inventory.domain import transfers
from services.inventory.domain.holds import Hold, validate_hold
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
    Transition,
    holds,
    same_request,
    transition,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

lines = st.lists(
    st.builds(
        ReservationLine,
        st.uuids().map(str),
        st.sampled_from(["S1", "S2", "S3"]),
        st.sampled_from(["L1", "L2"]),
        st.integers(min_value=1, max_value=9),
    ),
    max_size=12,
)


@given(lines)
def test_holds_are_sorted_by_location_and_sku_and_keep_every_unit(some_lines):
    needed = holds(some_lines)
    keys = [(loc, sku) for loc, sku, _ in needed]
    assert keys == sorted(set(keys))  # one global lock order, each row once
    assert sum(q for _, _, q in needed) == sum(line.quantity for line in some_lines)


@pytest.mark.parametrize(
    ("order_id", "reserve_lines", "ttl", "fields"),
    [
        ("", [ReservationLine("1", "S", "L", 1)], 0, ["order_id"]),
        ("O", [], 0, ["lines"]),
        ("O", [ReservationLine("1", "S", "L", 0)], 0, ["lines[0].quantity"]),
        (
            "O",
            [ReservationLine("1", "S", "L", 1), ReservationLine("1", "", "L", 1)],
            0,
            ["lines[1].line_id", "lines[1].sku_code"],
        ),
        ("O", [ReservationLine("1", "S", "L", 1)], -5, ["ttl_seconds"]),
    ],
)
def test_malformed_reservations_name_every_bad_field(order_id, reserve_lines, ttl, fields):
    with pytest.raises(InvalidArgument) as caught:
        validate_hold(Hold(order_id, "", tuple(reserve_lines), ttl))
    assert [v.field for v in caught.value.violations] == fields


def reservation(status: ReservationStatus) -> Reservation:
    return Reservation("O", "mall", status, (ReservationLine("1", "S", "L", 2),), NOW, NOW, NOW)


@pytest.mark.parametrize("target", [ReservationStatus.CONFIRMED, ReservationStatus.RELEASED])
def test_only_an_active_reservation_changes_and_repeating_an_end_is_a_no_op(target):
    assert transition(reservation(ReservationStatus.ACTIVE), target) is Transition.APPLY
    assert transition(reservation(target), target) is Transition.ALREADY_DONE
    for other in ReservationStatus:
        if other not in (target, ReservationStatus.ACTIVE):
            with pytest.raises(FailedPrecondition):
                transition(reservation(other), target)


def test_the_same_lines_in_another_order_are_the_same_request():
    held = reservation(ReservationStatus.ACTIVE)
    assert same_request(held, "mall", [ReservationLine("1", "S", "L", 2)])
    assert not same_request(held, "mall", [ReservationLine("1", "S", "L", 3)])
    assert not same_request(held, "pos", [ReservationLine("1", "S", "L", 2)])


def requested() -> transfers.Transfer:
    return transfers.Transfer(
        "T",
        "A",
        "B",
        transfers.TransferStatus.REQUESTED,
        (transfers.TransferLine("S1", 5), transfers.TransferLine("S2", 2)),
        "",
        NOW,
    )


def test_transfer_records_discrepancies_between_shipped_and_received():
    shipped = transfers.ship(requested(), [("S1", 4)], NOW)
    assert [(line.sku_code, line.shipped) for line in shipped.lines] == [("S1", 4), ("S2", 2)]
    received = transfers.receive(shipped, [("S2", 1)], NOW)
    assert [(line.received, line.discrepancy) for line in received.lines] == [(4, 0), (1, -1)]
    with pytest.raises(FailedPrecondition):
        transfers.ship(received, [], NOW)


def test_transfer_refuses_unknown_or_negative_quantities_and_empty_shipments():
    with pytest.raises(InvalidArgument) as caught:
        transfers.ship(requested(), [("S9", 1), ("S1", -1)], NOW)
    assert [v.field for v in caught.value.violations] == [
        "shipped[0].sku_code",
        "shipped[1].quantity",
    ]
    with pytest.raises(InvalidArgument):
        transfers.ship(requested(), [("S1", 0), ("S2", 0)], NOW)
    with pytest.raises(InvalidArgument) as same:
        transfers.validate_request("A", "A", [("S1", 1)], "")
    assert [v.field for v in same.value.violations] == ["to_location_id"]


def test_a_transfer_ships_at_most_what_was_requested_and_receives_at_most_what_was_shipped():
    with pytest.raises(InvalidArgument) as too_many:
        transfers.ship(requested(), [("S2", 3)], NOW)
    assert [v.field for v in too_many.value.violations] == ["shipped[0].quantity"]
    shipped = transfers.ship(requested(), [("S1", 4)], NOW)
    with pytest.raises(InvalidArgument) as from_nothing:
        transfers.receive(shipped, [("S1", 3), ("S2", 3)], NOW)
    assert [v.field for v in from_nothing.value.violations] == ["received[1].quantity"]
    with pytest.raises(InvalidArgument) as beyond_int64:
        transfers.receive(shipped, [("S1", 2**63 - 1)], NOW)
    assert [v.field for v in beyond_int64.value.violations] == ["received[0].quantity"]


def test_a_requested_quantity_is_bounded_like_a_movement():
    with pytest.raises(InvalidArgument) as caught:
        transfers.validate_request("A", "B", [("S1", 2**63 - 1), ("S2", 10**9)], "")
    assert [v.field for v in caught.value.violations] == ["lines[0].quantity"]


@given(
    st.lists(st.integers(1, 1_000_000_000), min_size=1, max_size=5),
    st.data(),
)
def test_received_plus_missing_is_always_what_was_shipped(asked, data):
    transfer = transfers.Transfer(
        "T",
        "A",
        "B",
        transfers.TransferStatus.REQUESTED,
        tuple(transfers.TransferLine(f"S{i}", q) for i, q in enumerate(asked)),
        "",
        NOW,
    )
    ship = [(f"S{i}", data.draw(st.integers(0, q))) for i, q in enumerate(asked)]
    if not any(q for _, q in ship):
        ship[0] = ("S0", asked[0])
    shipped = transfers.ship(transfer, ship, NOW)
    arrive = [
        (line.sku_code, data.draw(st.integers(0, line.shipped)))
        for line in shipped.lines
        if data.draw(st.booleans())
    ]
    received = transfers.receive(shipped, arrive, NOW)
    for line in received.lines:
        assert 0 <= line.received <= line.shipped <= line.requested
        assert line.received + line.missing == line.shipped
        assert line.discrepancy == -line.missing <= 0
