from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument
from services.member.domain.points import (
    Tier,
    points_for_order,
    points_to_reverse,
    tier_after_spend,
    tier_for_spend,
    validate_redeem,
)


def test_rates_by_tier():
    assert [points_for_order(t, 100_00) for t in Tier] == [100, 120, 150, 200]
    assert points_for_order(Tier.BASIC, 99) == 0
    assert points_for_order(Tier.GOLD, -5_00) == 0


def test_tier_thresholds():
    assert tier_for_spend(0) == Tier.BASIC
    assert tier_for_spend(1_999_99) == Tier.BASIC
    assert tier_for_spend(2_000_00) == Tier.SILVER
    assert tier_for_spend(10_000_00) == Tier.GOLD
    assert tier_for_spend(50_000_00) == Tier.PLATINUM


@given(st.sampled_from(list(Tier)), st.integers(min_value=0, max_value=10**9))
def test_tiers_only_go_up_on_spend(current, spend):
    assert tier_after_spend(current, spend) >= current


@given(
    st.integers(min_value=1, max_value=10**8),
    st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=8),
    st.sampled_from(list(Tier)),
)
def test_reversals_never_exceed_what_was_earned_and_a_full_refund_reverses_all(
    total, refunds, tier
):
    earned = points_for_order(tier, total)
    reversed_total = 0
    refunded = 0
    for refund in refunds:
        step = points_to_reverse(earned, reversed_total, total, refunded, refund)
        assert step >= 0
        reversed_total += step
        refunded += refund
        assert reversed_total <= earned
        assert reversed_total == earned * min(refunded, total) // total
    # Refund whatever is left: everything earned is reversed.
    if refunded < total:
        reversed_total += points_to_reverse(
            earned, reversed_total, total, refunded, total - refunded
        )
    assert reversed_total == earned


def test_redeem_needs_positive_points_within_the_balance():
    validate_redeem(10, 10)
    with pytest.raises(InvalidArgument):
        validate_redeem(0, 10)
    with pytest.raises(FailedPrecondition):
        validate_redeem(11, 10)
