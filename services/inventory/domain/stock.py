"""Stock of a SKU at a location, the movement ledger's rules and available to promise.

On hand is always the sum of the ledger's movements: every change of on hand is exactly one
movement whose quantity is the signed change. Reserved, safety and in transit are not on
hand and never move it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from libs.errors import FailedPrecondition, Validator

MAX_QUANTITY = 1_000_000_000
# On hand and in transit of one level stay at or below this, so that summing them over even
# millions of locations (channel ATP) still fits an int64.
MAX_LEVEL = 10**12
MAX_REASON_LENGTH = 500
MAX_KEY_LENGTH = 200
MAX_REFERENCE_LENGTH = 200
# A sender's idempotency key is stored under this prefix; keys the service makes itself
# (reservation:…, transfer:…, request:…, import:…) never start with it, so a key a sender
# chooses can never collide with one the service needs later.
CLIENT_KEY_PREFIX = "client:"


def client_key(key: str) -> str:
    """How a sender's own idempotency key is stored in the ledger."""
    return CLIENT_KEY_PREFIX + key


def shown_key(stored: str) -> str:
    """The key as the sender gave it (service-made keys are shown as they are)."""
    return stored.removeprefix(CLIENT_KEY_PREFIX)


class MovementKind(enum.StrEnum):
    RECEIPT = "receipt"
    SALE = "sale"
    ADJUSTMENT = "adjustment"
    COUNT = "count"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    RETURN = "return"


# What a sender may record directly: counts have their own rule, transfer movements come only
# from transfers (so in-transit stays consistent with what left the source).
DELTA_KINDS = frozenset(
    {MovementKind.RECEIPT, MovementKind.SALE, MovementKind.ADJUSTMENT, MovementKind.RETURN}
)


@dataclass(frozen=True)
class StockLevel:
    location_id: str
    sku_code: str
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    in_transit: int = 0

    @property
    def available(self) -> int:
        """Available to promise here: what is present, not held, beyond the safety buffer."""
        return available(self.on_hand, self.reserved, self.safety_stock)


def available(on_hand: int, reserved: int, safety_stock: int) -> int:
    return max(0, on_hand - reserved - safety_stock)


def validate_movement(
    kind: MovementKind | None,
    quantity: int,
    reason: str,
    idempotency_key: str,
    prefix: str = "",
    reference: str = "",
) -> None:
    """Raises InvalidArgument unless this is a well-formed delta movement."""
    v = Validator()
    if kind is None or kind not in DELTA_KINDS:
        v.add(prefix + "kind", "must be RECEIPT, SALE, ADJUSTMENT or RETURN")
    elif kind is MovementKind.ADJUSTMENT:
        v.check(quantity != 0, prefix + "quantity", "must not be zero")
    else:
        v.check(quantity > 0, prefix + "quantity", "must be greater than zero")
    v.check(abs(quantity) <= MAX_QUANTITY, prefix + "quantity", "is too large")
    _check_text(v, reason, idempotency_key, prefix)
    v.check(
        len(reference) <= MAX_REFERENCE_LENGTH,
        prefix + "reference",
        f"must be at most {MAX_REFERENCE_LENGTH} characters",
    )
    v.raise_if_any()


def validate_count(counted: int, reason: str, idempotency_key: str, prefix: str = "") -> None:
    v = Validator()
    v.check(counted >= 0, prefix + "counted_quantity", "must not be negative")
    v.check(counted <= MAX_QUANTITY, prefix + "counted_quantity", "is too large")
    _check_text(v, reason, idempotency_key, prefix)
    v.raise_if_any()


def _check_text(v: Validator, reason: str, idempotency_key: str, prefix: str) -> None:
    v.check(len(reason) <= MAX_REASON_LENGTH, prefix + "reason", "must be at most 500 characters")
    v.check(
        len(idempotency_key) <= MAX_KEY_LENGTH,
        prefix + "idempotency_key",
        "must be at most 200 characters",
    )


def on_hand_delta(kind: MovementKind, quantity: int) -> int:
    """The signed change of on hand that a delta movement makes (a sale takes stock out)."""
    if kind in (MovementKind.SALE, MovementKind.TRANSFER_OUT):
        return -quantity
    return quantity


def apply_delta(level: StockLevel, delta: int) -> StockLevel:
    """On hand after a movement; stock that is not there cannot leave, and no level holds
    more than MAX_LEVEL units (so channel sums stay within int64)."""
    if level.on_hand + delta < 0:
        raise FailedPrecondition(
            f"{level.sku_code} at {level.location_id}: on hand {level.on_hand} cannot go "
            f"down by {-delta}"
        )
    if level.on_hand + delta > MAX_LEVEL:
        raise FailedPrecondition(
            f"{level.sku_code} at {level.location_id}: on hand {level.on_hand} cannot go "
            f"up by {delta}; a level holds at most {MAX_LEVEL} units"
        )
    return StockLevel(
        level.location_id,
        level.sku_code,
        level.on_hand + delta,
        level.reserved,
        level.safety_stock,
        level.in_transit,
    )


def count_difference(level: StockLevel, counted: int) -> int:
    """A full count replaces on hand; the ledger records the difference it found."""
    return counted - level.on_hand


@dataclass(frozen=True)
class ChannelAvailability:
    """ATP of one SKU for one channel, summed over its eligible locations."""

    sku_code: str
    available: int
    on_hand: int
    reserved: int
    safety_stock: int
    in_transit: int
    quota: int | None


def channel_availability(
    sku_code: str, levels: Iterable[StockLevel], quota: int | None
) -> ChannelAvailability:
    """Sum of each eligible location's own ATP (one location's surplus never covers another's
    safety shortfall), capped by the channel's quota when one is set.

    The totals-only query computes the same sum in SQL (GREATEST per row) for speed; keep the
    two in step."""
    levels = list(levels)
    return capped_by_quota(
        ChannelAvailability(
            sku_code,
            sum(level.available for level in levels),
            sum(level.on_hand for level in levels),
            sum(level.reserved for level in levels),
            sum(level.safety_stock for level in levels),
            sum(level.in_transit for level in levels),
            None,
        ),
        quota,
    )


def capped_by_quota(totals: ChannelAvailability, quota: int | None) -> ChannelAvailability:
    """A channel quota caps what the channel is promised, never raises it."""
    if quota is None:
        return totals
    return ChannelAvailability(
        totals.sku_code,
        min(totals.available, max(0, quota)),
        totals.on_hand,
        totals.reserved,
        totals.safety_stock,
        totals.in_transit,
        quota,
    )


@dataclass(frozen=True)
class Movement:
    """One entry of the append-only ledger."""

    movement_id: int
    location_id: str
    sku_code: str
    kind: MovementKind
    quantity: int
    on_hand_after: int
    reason: str
    idempotency_key: str
    reference: str
    counted_quantity: int | None
    created_at: datetime

    def repeats(self, location_id: str, sku_code: str, kind: MovementKind, amount: int) -> bool:
        """Whether a movement sent again under the same key is this one (a retry), as opposed
        to a different movement reusing the key. ``amount`` is the quantity as sent (the
        counted quantity for a count)."""
        sent = self.counted_quantity if kind is MovementKind.COUNT else self.quantity
        if kind is MovementKind.SALE:
            amount = -amount
        return (self.location_id, self.sku_code, self.kind, sent) == (
            location_id,
            sku_code,
            kind,
            amount,
        )


class InsufficientStock(FailedPrecondition):
    """Not enough available to promise for what was asked; the caller may route elsewhere."""

    reason = "INSUFFICIENT_STOCK"
