"""SKU lifecycle, category moves, assortment kinds and barcodes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument
from services.catalog.domain.assortments import (
    AssortmentKind,
    ChannelKind,
    check_listing,
    sellable,
)
from services.catalog.domain.categories import check_move
from services.catalog.domain.pricing import Money, Window
from services.catalog.domain.skus import (
    Lifecycle,
    NewSku,
    barcode_check_digit_ok,
    gtin13,
    next_lifecycle,
)


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (Lifecycle.DRAFT, Lifecycle.ACTIVE, True),
        (Lifecycle.DRAFT, Lifecycle.DISCONTINUED, True),
        (Lifecycle.ACTIVE, Lifecycle.DISCONTINUED, True),
        (Lifecycle.ACTIVE, Lifecycle.ACTIVE, True),
        (Lifecycle.ACTIVE, Lifecycle.DRAFT, False),
        (Lifecycle.DISCONTINUED, Lifecycle.ACTIVE, False),
        (Lifecycle.DISCONTINUED, Lifecycle.DRAFT, False),
    ],
)
def test_lifecycle_transitions(current, target, ok):
    if ok:
        assert next_lifecycle(current, target) is target
    else:
        with pytest.raises(FailedPrecondition):
            next_lifecycle(current, target)


def test_a_move_under_a_descendant_or_itself_is_a_cycle():
    # tree: A > B > C ; moving A under C: C's ancestry is [C, B, A]
    with pytest.raises(FailedPrecondition, match="cycle"):
        check_move("A", ["C", "B", "A"])
    with pytest.raises(FailedPrecondition, match="own parent"):
        check_move("A", ["A"])
    check_move("C", ["A"])  # moving a leaf up is fine
    check_move("B", ["D", "E"])  # into another tree is fine


@given(st.lists(st.sampled_from("ABCDEFGH"), unique=True, min_size=1, max_size=8), st.data())
def test_a_move_is_refused_exactly_when_the_category_is_on_the_new_parents_path(path, data):
    moved = data.draw(st.sampled_from("ABCDEFGHX"))
    if moved in path:
        with pytest.raises(FailedPrecondition):
            check_move(moved, path)
    else:
        check_move(moved, path)


def listing(**overrides: object) -> None:
    args: dict[str, object] = {
        "sku_code": "S1",
        "kind": AssortmentKind.STANDARD,
        "channel_id": "C1",
        "channel_kind": ChannelKind.ONLINE,
        "brand_online_only": False,
        "lifecycle": Lifecycle.ACTIVE,
        "already_listed": False,
    }
    args.update(overrides)
    check_listing(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "channel_kind", "ok"),
    [
        (AssortmentKind.STANDARD, ChannelKind.ONLINE, True),
        (AssortmentKind.STANDARD, ChannelKind.OFFLINE, True),
        (AssortmentKind.ONLINE_ONLY, ChannelKind.ONLINE, True),
        (AssortmentKind.ONLINE_ONLY, ChannelKind.OFFLINE, False),
        (AssortmentKind.CLEARANCE_ONLINE_ONLY, ChannelKind.ONLINE, True),
        (AssortmentKind.CLEARANCE_ONLINE_ONLY, ChannelKind.OFFLINE, False),
        (AssortmentKind.OFFLINE_ONLY, ChannelKind.OFFLINE, True),
        (AssortmentKind.OFFLINE_ONLY, ChannelKind.ONLINE, False),
    ],
)
def test_assortment_kinds(kind, channel_kind, ok):
    if ok:
        listing(kind=kind, channel_kind=channel_kind)
    else:
        with pytest.raises(FailedPrecondition):
            listing(kind=kind, channel_kind=channel_kind)


def test_online_only_brand_stays_off_offline_channels():
    listing(brand_online_only=True, channel_kind=ChannelKind.ONLINE)
    with pytest.raises(FailedPrecondition, match="online only"):
        listing(brand_online_only=True, channel_kind=ChannelKind.OFFLINE)


def test_discontinued_sku_cannot_be_listed_anew_but_its_entry_can_change():
    with pytest.raises(FailedPrecondition, match="discontinued"):
        listing(lifecycle=Lifecycle.DISCONTINUED)
    listing(lifecycle=Lifecycle.DISCONTINUED, already_listed=True)
    listing(lifecycle=Lifecycle.DRAFT)


def _with_check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


@given(st.text("0123456789", min_size=11, max_size=12))
def test_a_correct_check_digit_is_accepted_and_any_other_refused(body):
    good = _with_check_digit(body)
    assert barcode_check_digit_ok(good)
    for wrong in "0123456789":
        if wrong != good[-1]:
            assert not barcode_check_digit_ok(good[:-1] + wrong)


def test_known_barcodes():
    assert barcode_check_digit_ok("4006381333931")  # EAN-13
    assert barcode_check_digit_ok("036000291452")  # UPC-A
    assert not barcode_check_digit_ok("40063813339")
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "4006381333931")
    assert not barcode_check_digit_ok(fullwidth)


def test_new_sku_names_every_bad_field():
    bad = NewSku(
        sku_code="bad code",
        style_code="",
        name="",
        barcode="123",
        color="",
        size="",
        list_price=Money("yuan", -5),
        attributes={"": "x"},
        lifecycle=Lifecycle.DISCONTINUED,
    )
    with pytest.raises(InvalidArgument) as caught:
        bad.validate()
    fields = {v.field for v in caught.value.violations}
    assert {
        "sku_code",
        "style_code",
        "name",
        "barcode",
        "list_price.currency_code",
        "list_price.amount_minor",
        "attributes[]",
        "lifecycle",
    } <= fields


def test_a_upc_a_and_its_zero_prefixed_ean_13_are_one_gtin():
    assert gtin13("036000291452") == gtin13("0036000291452") == "0036000291452"
    assert gtin13("4006381333931") == "4006381333931"
    assert gtin13("") == ""


@given(st.text("0123456789", min_size=11, max_size=11))
def test_every_valid_upc_a_is_a_valid_ean_13_once_zero_prefixed(body):
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    upc = body + str((10 - total % 10) % 10)
    assert barcode_check_digit_ok(upc)
    assert barcode_check_digit_ok(gtin13(upc))
    assert len(gtin13(upc)) == 13


def test_an_online_only_brand_is_not_sellable_offline_whatever_the_listing():
    at = datetime(2026, 6, 1, tzinfo=UTC)
    always = Window(None, None)
    assert sellable(always, at, channel_kind=ChannelKind.OFFLINE, brand_online_only=False)
    assert not sellable(always, at, channel_kind=ChannelKind.OFFLINE, brand_online_only=True)
    assert sellable(always, at, channel_kind=ChannelKind.ONLINE, brand_online_only=True)
    assert not sellable(None, at, channel_kind=ChannelKind.ONLINE, brand_online_only=False)
    assert not sellable(
        Window(None, at), at, channel_kind=ChannelKind.ONLINE, brand_online_only=False
    )


def test_an_existing_offline_entry_of_an_online_only_brand_may_still_change():
    listing(brand_online_only=True, channel_kind=ChannelKind.OFFLINE, already_listed=True)
