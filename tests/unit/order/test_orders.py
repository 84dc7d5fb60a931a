"""Capture checks, refunds per line, duplicate detection."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.order.domain.orders import (
    Address,
    AisleHandover,
    Mode,
    NewLine,
    NewOrder,
    Payment,
    differences,
    refund_for,
    validate,
)

BASE = NewOrder(
    channel_id="web",
    channel_kind="1",
    channel_order_id="T1",
    member_id="M1",
    guest_contact="",
    mode=Mode.EXPRESS_DELIVERY,
    aisle_handover=AisleHandover.NONE,
    selling_store_id="",
    selling_guide_staff_id="",
    referring_guide_code="",
    pickup_store_id="",
    address=Address(city="Shanghai", latitude=31.2, longitude=121.4),
    lines=(NewLine("A", 1, 1000, 0, "CNY"),),
    payment=Payment.PAID_ONLINE,
)


def fields_of(order: NewOrder) -> list[str]:
    with pytest.raises(InvalidArgument) as bad:
        validate(order)
    return [v.field for v in bad.value.violations]


def test_a_good_order_passes() -> None:
    validate(BASE)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": (NewLine("A", 0, 1000, 0, "CNY"),)}, "lines[0].quantity"),
        ({"lines": (NewLine("A", 1, 1000, 2000, "CNY"),)}, "lines[0].discount"),
        ({"mode": Mode.STORE_PICKUP}, "pickup_store_id"),
        (
            {"mode": Mode.SAME_CITY_DELIVERY, "address": Address(city="Shanghai")},
            "delivery_address.latitude",
        ),
        ({"mode": Mode.STORE_SALE, "payment": Payment.AWAITING}, "payment_state"),
        ({"mode": Mode.ENDLESS_AISLE, "selling_store_id": "S"}, "endless_aisle_handover"),
        ({"member_id": ""}, "member_id"),
        ({"address": None}, "delivery_address"),
        ({"mode": None}, "fulfilment_mode"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, object], field: str) -> None:
    assert field in fields_of(replace(BASE, **changes))  # type: ignore[arg-type]


def test_differences_name_the_changed_parts() -> None:
    other = replace(BASE, lines=(NewLine("A", 2, 1000, 0, "CNY"),), pickup_store_id="P")
    assert differences(other, BASE) == ["pickup_store_id", "lines[0]"]
    assert differences(BASE, BASE) == []
    assert BASE.fingerprint() == replace(BASE, payment=Payment.AWAITING).fingerprint()
    assert BASE.fingerprint() != other.fingerprint()


@given(st.integers(0, 10**9), st.integers(1, 50), st.data())
def test_refunds_add_up_to_the_line_total(total: int, quantity: int, data: st.DataObject) -> None:
    returned, refunds = 0, 0
    while returned < quantity:
        n = data.draw(st.integers(1, quantity - returned))
        refund = refund_for(total, quantity, returned, n)
        assert 0 <= refund <= total
        refunds += refund
        returned += n
    assert refunds == total


def test_cannot_return_more_than_sold() -> None:
    with pytest.raises(InvalidArgument):
        refund_for(1000, 2, 1, 2)
