"""Price rules: list price, channel rules, regional prices, the brand's same-price policy and
its promotion exceptions, and the one resolution that says which rule produced a price.

Conventions (also in the README):
- Money is integer minor units with a currency; no floats anywhere.
- A percentage rule is in basis points of the list price (9500 = 95.00%) and rounds half up
  to the minor unit: ``(list * bp + 5000) // 10000``.
- Windows are half-open ``[start, end)``: the start instant belongs to the window, the end
  instant does not, so back-to-back windows never both apply.
- A SKU is priced in one currency: list, regional, fixed channel and promotion prices alike.
- Precedence when resolving a price at time T: an active promotion for the channel and SKU,
  then the channel's rule (ignored while the brand's same-price policy is on), then the
  regional price, then the list price.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.errors import FailedPrecondition, Validator

BASIS_POINTS = 10_000
MAX_PERCENTAGE_BP = 100_000  # 1000%: anything above is a typo, not a price rule
MAX_AMOUNT_MINOR = 10**12


@dataclass(frozen=True, order=True)
class Money:
    currency: str
    amount_minor: int

    def __str__(self) -> str:
        return f"{self.amount_minor} {self.currency} (minor units)"


def validate_money(v: Validator, field: str, money: Money | None, *, required: bool) -> None:
    """Adds violations for a missing or malformed amount at ``field``."""
    if money is None:
        if required:
            v.add(field, "is required")
        return
    v.check(
        len(money.currency) == 3 and money.currency.isascii() and money.currency.isupper(),
        f"{field}.currency_code",
        "must be an ISO 4217 code such as CNY",
    )
    v.check(
        0 <= money.amount_minor <= MAX_AMOUNT_MINOR,
        f"{field}.amount_minor",
        f"must be between 0 and {MAX_AMOUNT_MINOR}",
    )


def sku_currencies(list_price: Money | None, other_currencies: Iterable[str]) -> set[str]:
    """The currencies a SKU is priced in: its list price's and those of its regional prices,
    fixed channel prices and promotion prices."""
    found = set(other_currencies)
    if list_price is not None:
        found.add(list_price.currency)
    return found


def currency_clash(currency: str, priced_in: Iterable[str]) -> str | None:
    """A SKU is priced in one currency across list, regional, fixed channel and promotion
    prices; whichever price comes first sets it. Returns the SKU's currency when a price in
    ``currency`` would mix with it, else None."""
    others = sorted(set(priced_in) - {currency})
    return others[0] if others else None


def percentage_of(amount_minor: int, basis_points: int) -> int:
    """``amount * bp / 10000`` rounded half up to the minor unit (amounts are never negative)."""
    if amount_minor < 0 or basis_points < 0:
        raise ValueError("amounts and percentages are never negative")
    return (amount_minor * basis_points + BASIS_POINTS // 2) // BASIS_POINTS


@dataclass(frozen=True)
class Window:
    """``[start, end)``; ``end`` None means open-ended, ``start`` None means since always."""

    start: datetime | None
    end: datetime | None

    def contains(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def overlaps(self, other: Window) -> bool:
        starts_before_other_ends = self.start is None or other.end is None or self.start < other.end
        other_starts_before_end = other.start is None or self.end is None or other.start < self.end
        return starts_before_other_ends and other_starts_before_end

    def is_well_formed(self) -> bool:
        return self.start is None or self.end is None or self.start < self.end


class PriceSource(enum.Enum):
    LIST = "list"
    REGIONAL = "regional"
    CHANNEL_FIXED = "channel_fixed"
    CHANNEL_PERCENTAGE = "channel_percentage"
    PROMOTION = "promotion"


@dataclass(frozen=True)
class ChannelRule:
    """Exactly one of ``fixed`` and ``percentage_bp``."""

    fixed: Money | None = None
    percentage_bp: int | None = None

    def apply(self, list_price: Money | None) -> Money | None:
        """The price this rule gives, or None when it needs a list price that is missing."""
        if self.fixed is not None:
            return self.fixed
        if list_price is None or self.percentage_bp is None:
            return None
        return Money(
            list_price.currency, percentage_of(list_price.amount_minor, self.percentage_bp)
        )

    @property
    def source(self) -> PriceSource:
        return (
            PriceSource.CHANNEL_FIXED if self.fixed is not None else PriceSource.CHANNEL_PERCENTAGE
        )

    def describe(self) -> str:
        if self.fixed is not None:
            return f"fixed {self.fixed}"
        return f"{(self.percentage_bp or 0) / 100:.2f}% of list"


def validate_channel_rule(v: Validator, field: str, rule: ChannelRule) -> None:
    if (rule.fixed is None) == (rule.percentage_bp is None):
        v.add(field, "needs exactly one of fixed_price and percentage_of_list_bp")
        return
    if rule.fixed is not None:
        validate_money(v, f"{field}.fixed_price", rule.fixed, required=True)
    elif rule.percentage_bp is not None:
        v.check(
            0 < rule.percentage_bp <= MAX_PERCENTAGE_BP,
            f"{field}.percentage_of_list_bp",
            f"must be between 1 and {MAX_PERCENTAGE_BP} basis points",
        )


@dataclass(frozen=True)
class PromotionPrice:
    promotion_id: str
    window: Window
    price: Money


@dataclass(frozen=True)
class PriceInputs:
    """Everything the catalog holds that bears on one SKU on one channel in one region."""

    list_price: Money | None
    regional_price: Money | None
    channel_rule: ChannelRule | None
    promotions: Sequence[PromotionPrice]
    same_price_policy: bool


@dataclass(frozen=True)
class ResolvedPrice:
    price: Money
    source: PriceSource
    explanation: str
    promotion_id: str = ""


def store_price(list_price: Money | None, regional_price: Money | None) -> Money | None:
    """What a store sells at: the regional price where one is set, else the list price."""
    return regional_price if regional_price is not None else list_price


def resolve(inputs: PriceInputs, at: datetime) -> ResolvedPrice:
    """The price at ``at`` and the rule that produced it (see the module's precedence).

    Raises FailedPrecondition when no rule gives a price (no list price and nothing else).
    """
    active = [p for p in inputs.promotions if p.window.contains(at)]
    if active:
        # Declaration refuses overlaps, so there is at most one; the cheapest wins if not.
        best = min(active, key=lambda p: (p.price.amount_minor, p.promotion_id))
        return ResolvedPrice(
            best.price,
            PriceSource.PROMOTION,
            f"promotion {best.promotion_id} is active in its window",
            best.promotion_id,
        )
    if inputs.channel_rule is not None and not inputs.same_price_policy:
        by_rule = inputs.channel_rule.apply(inputs.list_price)
        if by_rule is not None:
            return ResolvedPrice(
                by_rule,
                inputs.channel_rule.source,
                f"channel rule: {inputs.channel_rule.describe()}",
            )
    ignored = (
        "; the channel rule is ignored under the brand's same-price policy"
        if inputs.channel_rule is not None and inputs.same_price_policy
        else ""
    )
    if inputs.regional_price is not None:
        return ResolvedPrice(
            inputs.regional_price, PriceSource.REGIONAL, f"regional price{ignored}"
        )
    if inputs.list_price is not None:
        return ResolvedPrice(inputs.list_price, PriceSource.LIST, f"list price{ignored}")
    raise FailedPrecondition("the SKU has no list price and no other rule gives it a price")


def check_same_price(
    rule: ChannelRule, list_price: Money | None, regional_prices: Iterable[Money]
) -> None:
    """Under 线上线下同价 a channel rule must give the store price everywhere: the list price
    and every regional price. Refuses with the reason otherwise; a different channel price
    is only possible through a declared promotion."""
    price = rule.apply(list_price)
    if price is None:
        raise FailedPrecondition(
            "the brand sells at the same price online and offline; a percentage rule needs "
            "a list price to compare with"
        )
    for store in [*([list_price] if list_price is not None else []), *regional_prices]:
        if price != store:
            raise FailedPrecondition(
                f"the brand sells at the same price online and offline: the channel price "
                f"{price} differs from the store price {store}; declare a promotion instead"
            )


def first_overlap(window: Window, others: Iterable[tuple[str, Window]]) -> str | None:
    """The id of the first window in ``others`` that overlaps ``window``, if any."""
    for other_id, other in others:
        if window.overlaps(other):
            return other_id
    return None
