"""What a completed order and a return do to a member's account: spend, order count, last
purchase, points (earned at the tier before the order, reversed in proportion to the
refund) and tier upgrades. Pure: the service layer loads the accounts, applies a batch of
orders and returns in event order, and writes what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.member.domain.points import (
    PLATFORM_CURRENCY,
    PointsChangeKind,
    Tier,
    points_for_order,
    points_to_reverse,
    tier_after_spend,
)


@dataclass(frozen=True)
class PointsChange:
    """A points-ledger entry: the change and the balance right after it."""

    member_id: str
    kind: PointsChangeKind
    delta: int
    balance_after: int
    order_id: str = ""
    return_id: str = ""


@dataclass(frozen=True)
class TierChange:
    member_id: str
    previous: Tier
    tier: Tier


@dataclass(frozen=True)
class PurchaseRecord:
    """A row of the purchase history: a completed order, or a return (negative amount)."""

    member_id: str
    order_id: str
    return_id: str
    channel_id: str
    channel_kind: int
    store_id: str
    amount_minor: int
    currency: str
    categories: tuple[str, ...]
    occurred_at: datetime


@dataclass(frozen=True)
class CategoryRow:
    """One category of a completed order, kept as its own row for "bought X within N days"."""

    history_id: int
    category: str
    member_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class OrderRecord:
    """The purchase-history row of a completed order, as a return needs it."""

    channel_id: str
    channel_kind: int
    amount_minor: int
    currency: str


@dataclass
class OrderPoints:
    """What an order has earned, reversed and been refunded so far (all its returns)."""

    earned: int = 0
    reversed: int = 0
    refunded_minor: int = 0


@dataclass
class MemberAccount:
    """The part of a member that purchases move. ``changes`` records, in order, the ledger
    entries and tier changes applied since it was loaded (to be written and announced)."""

    member_id: str
    tier: Tier
    points_balance: int
    lifetime_spend_minor: int
    order_count: int
    last_purchase_at: datetime | None
    changes: list[PointsChange | TierChange] = field(default_factory=list)

    def complete_order(
        self, order_id: str, currency: str, total_minor: int, completed_at: datetime
    ) -> int:
        """Earn points at the tier rate before this order, add the spend, upgrade the tier
        when the spend reaches a higher one. Returns the points earned."""
        counts = currency == PLATFORM_CURRENCY
        tier = self.tier
        if counts:
            self.lifetime_spend_minor += total_minor
        self.order_count += 1
        if self.last_purchase_at is None or completed_at > self.last_purchase_at:
            self.last_purchase_at = completed_at
        earned = points_for_order(tier, total_minor) if counts else 0
        if earned:
            self._change_points(PointsChangeKind.EARN, earned, order_id=order_id)
        upgraded = tier_after_spend(tier, self.lifetime_spend_minor)
        if upgraded != tier:
            self.tier = upgraded
            self.changes.append(TierChange(self.member_id, tier, upgraded))
        return earned

    def receive_return(
        self,
        order: OrderRecord | None,
        so_far: OrderPoints,
        *,
        order_id: str,
        return_id: str,
        currency: str,
        refund_minor: int,
    ) -> int:
        """Lower the spend by the refunded share still unrefunded and reverse the order's
        points in proportion to the cumulative refund (the tier stays). Only an order in the
        platform currency refunded in it counts. ``so_far`` is updated. Returns the points
        reversed (positive)."""
        refunded_before = so_far.refunded_minor
        so_far.refunded_minor += refund_minor
        if order is None or currency != PLATFORM_CURRENCY or order.currency != PLATFORM_CURRENCY:
            return 0
        refund = min(refund_minor, max(0, order.amount_minor - refunded_before))
        self.lifetime_spend_minor = max(0, self.lifetime_spend_minor - refund)
        reversal = points_to_reverse(
            so_far.earned, so_far.reversed, order.amount_minor, refunded_before, refund_minor
        )
        if reversal:
            so_far.reversed += reversal
            self._change_points(
                PointsChangeKind.REVERSE, -reversal, order_id=order_id, return_id=return_id
            )
        return reversal

    def _change_points(
        self, kind: PointsChangeKind, delta: int, *, order_id: str = "", return_id: str = ""
    ) -> None:
        # A reversal may take the balance below zero when the points were already spent:
        # the debt is kept, not forgiven.
        self.points_balance += delta
        self.changes.append(
            PointsChange(self.member_id, kind, delta, self.points_balance, order_id, return_id)
        )
