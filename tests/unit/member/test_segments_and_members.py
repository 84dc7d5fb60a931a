from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument, Validator
from services.member.domain.members import SignUpSource, validate_sign_up
from services.member.domain.points import Tier
from services.member.domain.segments import (
    CategoryPurchase,
    Condition,
    Profile,
    Purchase,
    RfmGroup,
    RfmStats,
    SegmentRule,
    matches,
    rfm_group,
)
from services.member.domain.stored_value import check_refund

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@given(
    st.integers(min_value=0, max_value=50),
    st.integers(min_value=0, max_value=800),
    st.integers(min_value=0, max_value=10**7),
)
def test_rfm_groups_partition_members(orders, days_ago, spend):
    stats = RfmStats(orders, NOW - timedelta(days=days_ago) if orders else None, spend)
    group = rfm_group(stats, NOW)
    if orders == 0:
        assert group == RfmGroup.NO_PURCHASE
    elif days_ago > 365:
        assert group == RfmGroup.LOST
    elif days_ago > 90:
        assert group == RfmGroup.AT_RISK
    elif group == RfmGroup.CHAMPIONS:
        assert days_ago <= 30 and orders >= 5 and spend >= 5_000_00
    elif group == RfmGroup.LOYAL:
        assert orders >= 3
    else:
        assert group == RfmGroup.NEW and orders < 3


def _profile(*purchases: tuple[int, str]) -> Profile:
    return Profile(
        tier=Tier.BASIC,
        owner_guide_staff_id="G1",
        owner_store_id="S1",
        stats=RfmStats(len(purchases), NOW, 0),
        purchases=tuple(Purchase(NOW - timedelta(days=d), frozenset({c})) for d, c in purchases),
    )


def test_bought_x_and_not_y_within_the_window():
    rule = SegmentRule((Condition(category_purchase=CategoryPurchase("PHONE", 30, "CASE")),))
    assert matches(rule, _profile((3, "PHONE")), NOW)
    assert not matches(rule, _profile((3, "PHONE"), (1, "CASE")), NOW)
    assert matches(rule, _profile((3, "PHONE"), (60, "CASE")), NOW)
    assert not matches(rule, _profile((31, "PHONE")), NOW)
    both = SegmentRule(
        (
            Condition(category_purchase=CategoryPurchase("PHONE", 30)),
            Condition(owner_guide_staff_id="G2"),
        )
    )
    assert not matches(both, _profile((3, "PHONE")), NOW)


def _sign_up(**overrides):
    fields: dict[str, Any] = {
        "phone": "13812345678",
        "name": "Li",
        "source": int(SignUpSource.SELF),
        "guide_staff_id": "",
        "store_id": "",
        "consents": [],
    }
    fields.update(overrides)
    v = Validator()
    new = validate_sign_up(v, **fields)
    return new, [x.field for x in v.violations]


def test_sign_up_rules_by_source():
    new, errors = _sign_up()
    assert errors == [] and new is not None and new.phone == "+8613812345678"
    assert _sign_up(source=int(SignUpSource.GUIDE_ASSISTED))[1] == ["guide_staff_id", "store_id"]
    new, errors = _sign_up(
        source=int(SignUpSource.GUIDE_ASSISTED), guide_staff_id="G7", store_id="S1"
    )
    assert errors == [] and new is not None and new.owner_guide_staff_id == "G7"
    assert _sign_up(guide_staff_id="G7")[1] == ["guide_staff_id"]
    assert _sign_up(source=int(SignUpSource.DISTRIBUTOR_IMPORT))[1] == ["distributor_id"]
    assert _sign_up(phone="1", source=9, consents=[7])[1] == ["phone", "source", "consents[0]"]


def test_refunds_of_a_payment_never_exceed_it():
    check_refund(100, 40, 60)
    with pytest.raises(FailedPrecondition):
        check_refund(100, 40, 61)
    with pytest.raises(InvalidArgument):
        check_refund(100, 0, 0)
