"""Reservations: stock held for an order until the goods leave, the order is cancelled or
the hold expires. All lines are held or none; one reservation per order id."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.errors import FailedPrecondition, InvalidArgument

DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 7 * 24 * 3600
MAX_LINES = 200
MAX_ID_LENGTH = 128


class ReservationStatus(enum.StrEnum):
    ACTIVE = "active"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ReservationLine:
    line_id: str
    sku_code: str
    location_id: str
    quantity: int


@dataclass(frozen=True)
class Reservation:
    order_id: str
    channel: str
    status: ReservationStatus
    lines: tuple[ReservationLine, ...]
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


def effective_ttl(ttl_seconds: int) -> int:
    return ttl_seconds or DEFAULT_TTL_SECONDS


def holds(lines: Sequence[ReservationLine]) -> list[tuple[str, str, int]]:
    """The units to hold per (location, sku), in (location, sku) order.

    Taking row locks in one global order is what keeps concurrent multi-line reservations
    from deadlocking each other."""
    needed: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line.location_id, line.sku_code)
        needed[key] = needed.get(key, 0) + line.quantity
    return [(loc, sku, qty) for (loc, sku), qty in sorted(needed.items())]


def same_request(existing: Reservation, channel: str, lines: Sequence[ReservationLine]) -> bool:
    """Whether a repeated reserve for the order asks for what is already held."""
    return existing.channel == channel and sorted(existing.lines, key=_line_key) == sorted(
        lines, key=_line_key
    )


def _line_key(line: ReservationLine) -> str:
    return line.line_id


class Transition(enum.Enum):
    APPLY = "apply"
    ALREADY_DONE = "already_done"


def transition(reservation: Reservation, target: ReservationStatus) -> Transition:
    """Only an active reservation can be confirmed, released, expired or moved; asking for the
    state it already has is a no-op, anything else is refused."""
    if reservation.status is ReservationStatus.ACTIVE:
        return Transition.APPLY
    if reservation.status is target:
        return Transition.ALREADY_DONE
    raise FailedPrecondition(
        f"reservation for order {reservation.order_id} is {reservation.status.value}, "
        f"it cannot become {target.value}"
    )


def find_line(reservation: Reservation, line_id: str) -> ReservationLine:
    for line in reservation.lines:
        if line.line_id == line_id:
            return line
    raise InvalidArgument.field(
        "line_id", f"is not a line of the reservation for order {reservation.order_id}"
    )
