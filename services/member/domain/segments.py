"""Segments (精准营销): rules over profile and purchase history, evaluated to members.

A rule is a conjunction of conditions. RFM groups partition the members by recency (days
since the last completed order), frequency (completed orders) and monetary value (lifetime
net spend), first match wins:

    NO_PURCHASE  no completed order
    LOST         last order more than 365 days ago
    AT_RISK      last order 91-365 days ago
    CHAMPIONS    last order within 30 days, >= 5 orders, >= 5,000.00 spent
    LOYAL        last order within 90 days, >= 3 orders
    NEW          last order within 90 days, 1-2 orders
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from libs.errors import Validator
from services.member.domain.points import Tier

CATEGORY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_WINDOW_DAYS = 3650
MAX_CONDITIONS = 20


class RfmGroup(IntEnum):
    CHAMPIONS = 1
    LOYAL = 2
    NEW = 3
    AT_RISK = 4
    LOST = 5
    NO_PURCHASE = 6


LOST_AFTER_DAYS = 365
AT_RISK_AFTER_DAYS = 90
CHAMPION_WITHIN_DAYS = 30
CHAMPION_MIN_ORDERS = 5
CHAMPION_MIN_SPEND_MINOR = 5_000_00
LOYAL_MIN_ORDERS = 3


@dataclass(frozen=True)
class RfmStats:
    order_count: int
    last_purchase_at: datetime | None
    spend_minor: int


def rfm_group(stats: RfmStats, now: datetime) -> RfmGroup:
    if stats.order_count <= 0 or stats.last_purchase_at is None:
        return RfmGroup.NO_PURCHASE
    age = now - stats.last_purchase_at
    if age > timedelta(days=LOST_AFTER_DAYS):
        return RfmGroup.LOST
    if age > timedelta(days=AT_RISK_AFTER_DAYS):
        return RfmGroup.AT_RISK
    if (
        age <= timedelta(days=CHAMPION_WITHIN_DAYS)
        and stats.order_count >= CHAMPION_MIN_ORDERS
        and stats.spend_minor >= CHAMPION_MIN_SPEND_MINOR
    ):
        return RfmGroup.CHAMPIONS
    if stats.order_count >= LOYAL_MIN_ORDERS:
        return RfmGroup.LOYAL
    return RfmGroup.NEW


@dataclass(frozen=True)
class CategoryPurchase:
    bought: str
    within_days: int
    not_bought: str = ""


@dataclass(frozen=True)
class Condition:
    """Exactly one field is set."""

    rfm_group: RfmGroup | None = None
    category_purchase: CategoryPurchase | None = None
    tier: Tier | None = None
    owner_guide_staff_id: str | None = None
    owner_store_id: str | None = None


@dataclass(frozen=True)
class SegmentRule:
    all_of: tuple[Condition, ...]


def validate_category_purchase(
    v: Validator, prefix: str, bought: str, within_days: int, not_bought: str
) -> CategoryPurchase | None:
    before = len(v.violations)
    v.check(
        bool(CATEGORY_PATTERN.match(bought)),
        f"{prefix}.bought_category_code",
        "must be a category code (1-64 of letters, digits, '.', '_', '-')",
    )
    v.check(
        1 <= within_days <= MAX_WINDOW_DAYS,
        f"{prefix}.within_days",
        f"must be between 1 and {MAX_WINDOW_DAYS}",
    )
    if not_bought:
        v.check(
            bool(CATEGORY_PATTERN.match(not_bought)),
            f"{prefix}.not_bought_category_code",
            "must be a category code",
        )
        v.check(not_bought != bought, f"{prefix}.not_bought_category_code", "must differ")
    if len(v.violations) > before:
        return None
    return CategoryPurchase(bought, within_days, not_bought)


@dataclass(frozen=True)
class Purchase:
    """A history entry as the pure evaluator sees it (returns are not purchases)."""

    occurred_at: datetime
    categories: frozenset[str]


@dataclass(frozen=True)
class Profile:
    tier: Tier
    owner_guide_staff_id: str
    owner_store_id: str
    stats: RfmStats
    purchases: tuple[Purchase, ...]


def matches(rule: SegmentRule, profile: Profile, now: datetime) -> bool:
    """The reference semantics of a rule; the database query must agree with it."""
    return all(_condition_holds(c, profile, now) for c in rule.all_of)


def _condition_holds(c: Condition, p: Profile, now: datetime) -> bool:
    if c.rfm_group is not None:
        return rfm_group(p.stats, now) == c.rfm_group
    if c.tier is not None:
        return p.tier == c.tier
    if c.owner_guide_staff_id is not None:
        return p.owner_guide_staff_id == c.owner_guide_staff_id
    if c.owner_store_id is not None:
        return p.owner_store_id == c.owner_store_id
    if c.category_purchase is not None:
        cp = c.category_purchase
        since = now - timedelta(days=cp.within_days)
        window = [x for x in p.purchases if x.occurred_at >= since]
        bought = any(cp.bought in x.categories for x in window)
        avoided = not cp.not_bought or not any(cp.not_bought in x.categories for x in window)
        return bought and avoided
    return False
