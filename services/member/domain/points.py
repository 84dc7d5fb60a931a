"""Tiers and points: earning by tier rate on completed orders, proportional reversal on
returns, redemption within the balance, tier upgrades on lifetime net spend.

Only the platform currency earns points and counts as spend (other currencies are kept in
the purchase history without points). Enum values are omni.member.v1's protobuf numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from libs.errors import FailedPrecondition, InvalidArgument

PLATFORM_CURRENCY = "CNY"


class Tier(IntEnum):
    BASIC = 1
    SILVER = 2
    GOLD = 3
    PLATINUM = 4


class PointsChangeKind(IntEnum):
    EARN = 1
    REVERSE = 2
    REDEEM = 3
    MERGE_IN = 4
    MERGE_OUT = 5


@dataclass(frozen=True)
class TierRule:
    tier: Tier
    # Lifetime net spend (minor units of the platform currency) that reaches the tier.
    min_spend_minor: int
    # Points per 100 yuan spent (1 point per yuan at BASIC).
    points_per_100_yuan: int


TIER_RULES: tuple[TierRule, ...] = (
    TierRule(Tier.BASIC, 0, 100),
    TierRule(Tier.SILVER, 2_000_00, 120),
    TierRule(Tier.GOLD, 10_000_00, 150),
    TierRule(Tier.PLATINUM, 50_000_00, 200),
)
_RULE_BY_TIER = {rule.tier: rule for rule in TIER_RULES}


def tier_for_spend(spend_minor: int) -> Tier:
    reached = Tier.BASIC
    for rule in TIER_RULES:
        if spend_minor >= rule.min_spend_minor:
            reached = rule.tier
    return reached


def tier_after_spend(current: Tier, spend_minor: int) -> Tier:
    """Upgrades only: a return lowers the spend but never the tier (downgrades are a
    periodic review's business, not an order event's)."""
    return max(current, tier_for_spend(spend_minor))


def points_for_order(tier: Tier, total_minor: int) -> int:
    """Points earned on an order total at the tier's rate, rounded down (a fen earns none)."""
    if total_minor <= 0:
        return 0
    return total_minor * _RULE_BY_TIER[tier].points_per_100_yuan // 10_000


def points_to_reverse(
    earned: int, already_reversed: int, order_total_minor: int, refunded_before: int, refund: int
) -> int:
    """Points to take back for a return of ``refund`` on an order that earned ``earned``.

    Proportional to the refunded share, computed on the cumulative refund so rounding never
    drifts: after all returns, reversed = floor(earned * refunded / total), and a full refund
    reverses exactly what was earned; never more than was earned in total.
    """
    if earned <= 0 or order_total_minor <= 0 or refund <= 0:
        return 0
    refunded = min(order_total_minor, refunded_before + refund)
    target = earned * refunded // order_total_minor
    return max(0, min(earned, target) - already_reversed)


def validate_redeem(points: int, balance: int | None = None) -> None:
    """Redeem a positive number of points, never more than the balance (when known; the
    database enforces it again atomically)."""
    if points <= 0:
        raise InvalidArgument.field("points", "must be positive")
    if balance is not None and points > balance:
        raise FailedPrecondition(f"not enough points: balance {balance}, asked {points}")
