"""Scopes, territories, guide codes, settlement periods and diversion detection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument, PermissionDenied
from services.distribution.domain import guide_codes
from services.distribution.domain.commission_rules import Line
from services.distribution.domain.diversion import AlertKind, Dealer, Shipment, detect_alerts
from services.distribution.domain.organisation import (
    Caller,
    OrgUnit,
    Territory,
    UnitKind,
    in_territory,
    validate_new_unit,
)
from services.distribution.domain.settlement import (
    is_period,
    landing_period,
    next_period,
    period_end,
)


def test_caller_sees_own_unit_and_below_only():
    city = Caller("M1", "/HQ/GD/SZ/")
    assert city.can_see("/HQ/GD/SZ/")
    assert city.can_see("/HQ/GD/SZ/S1/")
    assert not city.can_see("/HQ/GD/GZ/S2/")
    assert not city.can_see("/HQ/GD/")
    # A sibling whose id starts with ours is not below us.
    assert not city.can_see("/HQ/GD/SZX/")
    with pytest.raises(PermissionDenied):
        city.require("/HQ/GD/GZ/", "x")
    with pytest.raises(PermissionDenied):
        city.require_hq("HQ")
    Caller("A", "/HQ/").require_hq("HQ")
    Caller("admin", "/", is_admin=True).require_hq("ANY")


def test_territory_covers_whole_province_or_one_city():
    territory = [Territory("Guangdong"), Territory("Hunan", "Changsha")]
    assert in_territory(territory, "Guangdong", "Shenzhen")
    assert in_territory(territory, "Hunan", "Changsha")
    assert not in_territory(territory, "Hunan", "Yueyang")
    assert not in_territory([], "Guangdong", "Shenzhen")


def parent(kind: UnitKind) -> OrgUnit:
    return OrgUnit("P", kind, "p", "", "/P/", "P", "", "", "", ())


def test_new_unit_shape_rules_name_the_field():
    with pytest.raises(InvalidArgument) as caught:
        validate_new_unit(
            unit_id="bad id",
            kind=UnitKind.STORE,
            name=" ",
            parent=parent(UnitKind.PROVINCE),
            parent_id="P",
            province="",
            city="",
            territories=(),
        )
    assert {v.field for v in caught.value.violations} == {"unit_id", "name", "parent_id"}
    with pytest.raises(InvalidArgument) as caught:
        validate_new_unit(
            unit_id="D1",
            kind=UnitKind.DISTRIBUTOR,
            name="d",
            parent=parent(UnitKind.CITY),
            parent_id="P",
            province="",
            city="",
            territories=(),
        )
    assert [v.field for v in caught.value.violations] == ["territories"]


def test_guide_codes_verify_only_when_signed_with_the_key():
    code = guide_codes.issue(b"k1", "G.1")
    assert guide_codes.verify(b"k1", code) == "G.1"
    assert guide_codes.verify(b"k2", code) is None
    assert guide_codes.verify(b"k1", "G.2" + code[3:]) is None
    assert guide_codes.verify(b"k1", "no-signature") is None


@given(st.text(min_size=1, max_size=30))
def test_any_staff_id_round_trips(staff_id):
    assert guide_codes.verify(b"key", guide_codes.issue(b"key", staff_id)) == staff_id


def test_a_non_ascii_signature_is_not_genuine_rather_than_an_error():
    genuine = guide_codes.issue(b"k", "G1")
    for forged in ("G1.é", "G1.签名", genuine[:-1] + "é", "G1.\udc80", "é.é"):
        assert guide_codes.verify(b"k", forged) is None


@given(st.text(max_size=60))
def test_any_text_is_a_code_or_not_never_an_error(text):
    assert guide_codes.verify(b"key", text) in (None, text.rpartition(".")[0])


def test_periods_are_months_a_calendar_can_name():
    assert is_period("2026-01") and is_period("0001-01") and is_period("9999-11")
    arabic_indic = "\u0662\u0660\u0662\u0666-\u0660\u0661"
    for text in ("0000-05", "9999-12", "2026-13", "2026-1", "2026-01\n", arabic_indic, "²026-01"):
        assert not is_period(text), text
    assert period_end("9999-11") == datetime(9999, 12, 1, tzinfo=UTC)
    assert period_end("0001-01") == datetime(1, 2, 1, tzinfo=UTC)


def test_periods_roll_over_closed_months():
    assert next_period("2026-12") == "2027-01"
    assert period_end("2026-02") == datetime(2026, 3, 1, tzinfo=UTC)
    moment = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    assert landing_period(moment, set()) == "2026-01"
    assert landing_period(moment, {"2026-01", "2026-02"}) == "2026-03"


def test_diversion_alerts():
    dealer = Dealer("D1", UnitKind.DISTRIBUTOR, (Territory("Guangdong"),))
    inside = detect_alerts(
        order_id="O",
        currency="CNY",
        delivery_province="Guangdong",
        delivery_city="Foshan",
        selling_dealer=dealer,
        shipments=[Shipment("F1", dealer)],
        lines=[Line("L1", 2, 2_000, "SKU")],
        minimum_prices={"SKU": 1_000},
    )
    assert inside == []
    outside = detect_alerts(
        order_id="O",
        currency="CNY",
        delivery_province="Hunan",
        delivery_city="Changsha",
        selling_dealer=dealer,
        shipments=[Shipment("F1", dealer)],
        lines=[Line("L1", 2, 1_999, "SKU"), Line("L2", 1, 10, "OTHER")],
        minimum_prices={"SKU": 1_000},
    )
    assert [a.kind for a in outside] == [
        AlertKind.OUT_OF_TERRITORY_SHIPMENT,
        AlertKind.OUT_OF_TERRITORY_SALE,
        AlertKind.PRICE_BELOW_MINIMUM,
    ]
    assert outside[2].unit_price_minor == 999
    no_address = detect_alerts(
        order_id="O",
        currency="CNY",
        delivery_province="",
        delivery_city="",
        selling_dealer=None,
        shipments=[Shipment("F1", dealer)],
        lines=[],
        minimum_prices={},
    )
    assert no_address == []
