"""Transfers (调货) between two locations: requested, shipped (in transit at the
destination, gone from the source), received (with what did not arrive recorded).

Quantities per line: 0 < requested <= MAX_QUANTITY; 0 <= shipped <= requested (shipping more
than was asked is refused: it would be a different transfer); 0 <= received <= shipped, and
received + missing == shipped (what did not arrive is the line's discrepancy; more than was
shipped is refused, as stock cannot come from nothing)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from libs.errors import FailedPrecondition, InvalidArgument, Validator
from services.inventory.domain.stock import MAX_QUANTITY

MAX_LINES = 500


class TransferStatus(enum.StrEnum):
    REQUESTED = "requested"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    # Called off before anything left the source.
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class TransferLine:
    sku_code: str
    requested: int
    shipped: int = 0
    received: int = 0

    @property
    def discrepancy(self) -> int:
        """received - shipped: zero, or minus what did not arrive."""
        return self.received - self.shipped

    @property
    def missing(self) -> int:
        """Shipped units that did not arrive (received + missing == shipped)."""
        return self.shipped - self.received


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    from_location_id: str
    to_location_id: str
    status: TransferStatus
    lines: tuple[TransferLine, ...]
    reason: str
    requested_at: datetime
    shipped_at: datetime | None = None
    received_at: datetime | None = None


def validate_request(
    from_location_id: str, to_location_id: str, lines: Sequence[tuple[str, int]], reason: str
) -> None:
    v = Validator()
    v.check(bool(from_location_id), "from_location_id", "is required")
    v.check(bool(to_location_id), "to_location_id", "is required")
    v.check(
        not from_location_id or from_location_id != to_location_id,
        "to_location_id",
        "must differ from from_location_id",
    )
    v.check(bool(lines), "lines", "at least one line is required")
    v.check(len(lines) <= MAX_LINES, "lines", f"at most {MAX_LINES} lines")
    v.check(len(reason) <= 500, "reason", "must be at most 500 characters")
    seen: set[str] = set()
    for i, (sku, qty) in enumerate(lines):
        v.check(bool(sku), f"lines[{i}].sku_code", "is required")
        v.check(sku not in seen, f"lines[{i}].sku_code", "is repeated")
        seen.add(sku)
        v.check(qty > 0, f"lines[{i}].quantity", "must be greater than zero")
        v.check(qty <= MAX_QUANTITY, f"lines[{i}].quantity", f"must be at most {MAX_QUANTITY}")
    v.raise_if_any()


def _per_sku(
    transfer: Transfer,
    quantities: Sequence[tuple[str, int]],
    field: str,
    bound: Callable[[TransferLine], tuple[int, str]],
) -> dict[str, int]:
    """The given quantity per SKU; each must be a line's, at most once, between 0 and the
    line's ``bound`` (the limit and what it is, for the message)."""
    known = {line.sku_code: line for line in transfer.lines}
    v = Validator()
    found: dict[str, int] = {}
    for i, (sku, qty) in enumerate(quantities):
        line = known.get(sku)
        v.check(line is not None, f"{field}[{i}].sku_code", "is not a line of the transfer")
        v.check(sku not in found, f"{field}[{i}].sku_code", "is repeated")
        v.check(qty >= 0, f"{field}[{i}].quantity", "must not be negative")
        if line is not None:
            limit, what = bound(line)
            v.check(qty <= limit, f"{field}[{i}].quantity", f"must not exceed the {limit} {what}")
        found[sku] = qty
    v.raise_if_any()
    return found


def ship(transfer: Transfer, shipped: Sequence[tuple[str, int]], at: datetime) -> Transfer:
    """What left the source, at most what was requested per line; unlisted SKUs leave as
    requested. At least one unit must leave."""
    if transfer.status is not TransferStatus.REQUESTED:
        raise FailedPrecondition(f"transfer {transfer.transfer_id} is {transfer.status.value}")
    given: Mapping[str, int] = _per_sku(
        transfer, shipped, "shipped", lambda line: (line.requested, "requested")
    )
    lines = tuple(
        replace(line, shipped=given.get(line.sku_code, line.requested)) for line in transfer.lines
    )
    if not any(line.shipped for line in lines):
        raise InvalidArgument.field("shipped", "at least one unit must be shipped")
    return replace(transfer, status=TransferStatus.IN_TRANSIT, lines=lines, shipped_at=at)


def receive(transfer: Transfer, received: Sequence[tuple[str, int]], at: datetime) -> Transfer:
    """What arrived, at most what was shipped per line; unlisted SKUs arrived as shipped.
    What did not arrive stays on the line as its discrepancy."""
    if transfer.status is not TransferStatus.IN_TRANSIT:
        raise FailedPrecondition(f"transfer {transfer.transfer_id} is {transfer.status.value}")
    given = _per_sku(
        transfer,
        received,
        "received",
        lambda line: (line.shipped, "shipped (fewer is recorded as a discrepancy)"),
    )
    lines = tuple(
        replace(line, received=given.get(line.sku_code, line.shipped)) for line in transfer.lines
    )
    return replace(transfer, status=TransferStatus.RECEIVED, lines=lines, received_at=at)


def cancel(transfer: Transfer, reason: str) -> Transfer:
    """A requested transfer can be called off; once goods left the source it cannot (they
    are on their way). Cancelling a cancelled transfer changes nothing. A requested transfer
    holds no stock at the source (shipping takes unreserved units), so nothing is released."""
    if len(reason) > 500:
        raise InvalidArgument.field("reason", "must be at most 500 characters")
    if transfer.status is TransferStatus.CANCELLED:
        return transfer
    if transfer.status is not TransferStatus.REQUESTED:
        raise FailedPrecondition(
            f"transfer {transfer.transfer_id} is {transfer.status.value}; only a requested "
            "transfer can be cancelled"
        )
    return replace(transfer, status=TransferStatus.CANCELLED)
