"""Capture checks, refunds per line, duplicate detection."""

from __future__ import annotations

import math
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


BIG = 2**62


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # Coordinates routing cannot measure from (inventory refuses them).
        (
            {"address": Address(city="Shanghai", latitude=91, longitude=121)},
            "delivery_address.latitude",
        ),
        (
            {"address": Address(city="Shanghai", latitude=31, longitude=-181)},
            "delivery_address.longitude",
        ),
        (
            {"address": Address(city="Shanghai", latitude=math.nan, longitude=121)},
            "delivery_address.latitude",
        ),
        (
            {"address": Address(city="Shanghai", latitude=31, longitude=math.inf)},
            "delivery_address.longitude",
        ),
        ({"address": Address(city="x" * 501, latitude=31, longitude=121)}, "delivery_address.city"),
        # Money that does not fit a bigint: the line, and the order's total.
        ({"lines": (NewLine("A", 4, BIG, 0, "CNY"),)}, "lines[0].unit_price"),
        ({"lines": (NewLine("A", 1, BIG, 0, "CNY"), NewLine("B", 1, BIG, 0, "CNY"))}, "lines"),
        ({"lines": (NewLine("A", 1, 1000, 10, "CNY", "USD"),)}, "lines[0].discount.currency_code"),
        ({"lines": (NewLine("A", 1, 1000, 10, "CNY", ""),)}, "lines[0].discount.currency_code"),
        ({"lines": (NewLine("A", 1, 1000, 0, "cny"),)}, "lines[0].unit_price.currency_code"),
        ({"lines": (NewLine("A" * 129, 1, 1000, 0, "CNY"),)}, "lines[0].sku_code"),
        # Ids go into indexed columns: bounded.
        ({"channel_order_id": "T" * 129}, "channel_order_id"),
        ({"member_id": "M" * 129}, "member_id"),
        ({"pickup_store_id": "P" * 129, "mode": Mode.STORE_PICKUP}, "pickup_store_id"),
        ({"guest_contact": "g" * 501, "member_id": ""}, "guest_contact"),
        ({"stock_channel": "bad channel!"}, "stock_channel"),
        ({"channel_id": "-web", "stock_channel": "-web"}, "channel_id"),
        ({"channel_id": "w" * 65, "stock_channel": "w" * 65}, "channel_id"),
    ],
)
def test_bad_values_are_named(changes: dict[str, object], field: str) -> None:
    assert field in fields_of(replace(BASE, **changes))  # type: ignore[arg-type]


def test_limits_themselves_are_accepted() -> None:
    validate(
        replace(
            BASE,
            channel_order_id="T" * 128,
            address=Address(city="Shanghai", latitude=-90, longitude=180),
            lines=(NewLine("A", 1, 2**63 - 1, 5, "CNY", "CNY"), NewLine("B", 1, 0, 0, "CNY")),
            stock_channel="grp:east.1",
        )
    )


def test_fingerprint_of_stored_orders_is_unchanged() -> None:
    """Orders captured before the discount's currency was checked keep their fingerprint,
    so a channel re-sending one is still the same order."""
    assert BASE.fingerprint() == (
        "3f0f9a4e97952f48ddefe16d70f5c4a576a760b67ffc35b1fe2c3846efca699c"
    )
    with_currency = replace(BASE, lines=(NewLine("A", 1, 1000, 0, "CNY", "CNY"),))
    assert with_currency.fingerprint() == BASE.fingerprint()
    assert differences(with_currency, BASE) == []


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
