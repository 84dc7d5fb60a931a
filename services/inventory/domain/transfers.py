"""Transfers (调货) between two locations: requested, shipped (in transit at the
destination, gone from the source), received (with what did not arrive recorded)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from libs.errors import FailedPrecondition, InvalidArgument, Validator

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
        return self.received - self.shipped


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
    v.raise_if_any()


def _per_sku(
    transfer: Transfer, quantities: Sequence[tuple[str, int]], field: str
) -> dict[str, int]:
    known = {line.sku_code for line in transfer.lines}
    v = Validator()
    found: dict[str, int] = {}
    for i, (sku, qty) in enumerate(quantities):
        v.check(sku in known, f"{field}[{i}].sku_code", "is not a line of the transfer")
        v.check(sku not in found, f"{field}[{i}].sku_code", "is repeated")
        v.check(qty >= 0, f"{field}[{i}].quantity", "must not be negative")
        found[sku] = qty
    v.raise_if_any()
    return found


def ship(transfer: Transfer, shipped: Sequence[tuple[str, int]], at: datetime) -> Transfer:
    """What left the source; unlisted SKUs leave as requested. At least one unit must leave."""
    if transfer.status is not TransferStatus.REQUESTED:
        raise FailedPrecondition(f"transfer {transfer.transfer_id} is {transfer.status.value}")
    given: Mapping[str, int] = _per_sku(transfer, shipped, "shipped")
    lines = tuple(
        replace(line, shipped=given.get(line.sku_code, line.requested)) for line in transfer.lines
    )
    if not any(line.shipped for line in lines):
        raise InvalidArgument.field("shipped", "at least one unit must be shipped")
    return replace(transfer, status=TransferStatus.IN_TRANSIT, lines=lines, shipped_at=at)


def receive(transfer: Transfer, received: Sequence[tuple[str, int]], at: datetime) -> Transfer:
    """What arrived; unlisted SKUs arrived as shipped. Differences stay on the lines."""
    if transfer.status is not TransferStatus.IN_TRANSIT:
        raise FailedPrecondition(f"transfer {transfer.transfer_id} is {transfer.status.value}")
    given = _per_sku(transfer, received, "received")
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
