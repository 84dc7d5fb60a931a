"""Holds: deciding a batch of reservation requests against the stock levels they touch.

A hold asks for every line of one order, either at the locations its lines name (as Reserve
does) or, when it lists ranked candidate locations, whole at the first candidate able to
take it (first fit). A batch of holds is decided in arrival order against the levels the
engine locked for it: each hold sees the levels as the holds before it left them, so a
batch decides exactly what the same holds applied one at a time would (the group commit
changes the cost, never the outcome). Every hold is all or nothing, and nothing is ever
promised beyond a level's available to promise (on hand - reserved - safety stock).

Pure: the engine (service_layer/reservation_engine.py) locks the rows, calls
``decide_batch`` and writes what it returns."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from libs.errors import DomainError, FailedPrecondition, InvalidArgument, Validator
from services.inventory.domain.locations import Capability, Location, is_open
from services.inventory.domain.reservations import (
    DEFAULT_TTL_SECONDS,
    MAX_ID_LENGTH,
    MAX_LINES,
    MAX_TTL_SECONDS,
    Reservation,
    ReservationLine,
    ReservationStatus,
    holds,
    same_request,
)
from services.inventory.domain.stock import InsufficientStock, StockLevel

MAX_CANDIDATES = 200
# Rows a routed hold can make the engine lock (candidates x distinct SKUs): a batch locks
# every row its holds might take, so one hold must not lock half the table.
MAX_CANDIDATE_ROWS = 4_000
MAX_QUANTITY = 1_000_000
MAX_CHANNEL_LENGTH = 128

Key = tuple[str, str]  # (location_id, sku_code)


@dataclass(frozen=True)
class Hold:
    """One order's request for stock. ``candidates`` empty: every line names its location;
    otherwise lines leave the location empty and the whole hold goes to one candidate."""

    order_id: str
    channel: str
    lines: tuple[ReservationLine, ...]
    ttl_seconds: int = 0
    candidates: tuple[str, ...] = ()
    capability: Capability | None = None
    require_open_now: bool = False
    # The goods leave now (a sale at the counter): held and confirmed in one step.
    confirm: bool = False
    # A routed hold: the locations version its candidates were ranked at (0: not checked).
    locations_version: int = 0

    @property
    def routed(self) -> bool:
        return bool(self.candidates)

    def rows(self) -> set[Key]:
        """Every (location, sku) level this hold might take units from."""
        if not self.routed:
            return {(line.location_id, line.sku_code) for line in self.lines}
        skus = {line.sku_code for line in self.lines}
        return {(loc, sku) for loc in self.candidates for sku in skus}

    def skus(self) -> set[str]:
        return {line.sku_code for line in self.lines}

    def locations(self) -> set[str]:
        if self.routed:
            return set(self.candidates)
        return {line.location_id for line in self.lines}


class StaleLocations(FailedPrecondition):
    """The candidates were ranked from locations that changed since: rank again."""

    reason = "STALE_LOCATIONS"


class NoLocationCanHold(FailedPrecondition):
    """None of the candidate locations could take every line of the hold."""

    reason = "NO_LOCATION_CAN_HOLD"


@dataclass(frozen=True)
class Skipped:
    """A candidate ranked before the chosen one (or any, when refused), and why not."""

    location_id: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """What became of one hold: held (its lines with the locations chosen) or refused."""

    lines: tuple[ReservationLine, ...] = ()
    error: DomainError | None = None
    skipped: tuple[Skipped, ...] = ()

    @property
    def held(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Sale:
    """A confirmed hold's units leaving the ledger at one level (one SALE movement)."""

    order_id: str
    location_id: str
    sku_code: str
    quantity: int
    on_hand_after: int


@dataclass
class BatchPlan:
    """The decisions, in the order of the holds, and what they do to the stock."""

    decisions: list[Decision]
    # Final level of every row the batch changed.
    levels: dict[Key, StockLevel] = field(default_factory=dict)
    reserved_delta: dict[Key, int] = field(default_factory=dict)
    on_hand_delta: dict[Key, int] = field(default_factory=dict)
    sales: list[Sale] = field(default_factory=list)

    def cause(self, key: Key) -> str:
        """What changed the row (StockChangedEvent.cause): "sale" once a unit left."""
        return "sale" if self.on_hand_delta.get(key) else "reserved"


# --- shape ---------------------------------------------------------------------------------


def validate_hold(hold: Hold) -> None:
    """Raises InvalidArgument naming every malformed field of a hold (Reserve's names:
    ``order_id``, ``lines[i].quantity``, ``candidate_location_ids[j]`` …)."""
    v = Validator()
    _check_text(v, "order_id", hold.order_id, required=True)
    _check_text(v, "channel", hold.channel, required=False, limit=MAX_CHANNEL_LENGTH)
    v.check(bool(hold.lines), "lines", "at least one line is required")
    v.check(len(hold.lines) <= MAX_LINES, "lines", f"at most {MAX_LINES} lines")
    v.check(
        0 <= hold.ttl_seconds <= MAX_TTL_SECONDS,
        "ttl_seconds",
        f"must be between 1 and {MAX_TTL_SECONDS} (0 = default {DEFAULT_TTL_SECONDS})",
    )
    seen: set[str] = set()
    for i, line in enumerate(hold.lines):
        f = f"lines[{i}]"
        _check_text(v, f + ".line_id", line.line_id, required=True)
        v.check(line.line_id not in seen, f + ".line_id", "is repeated")
        seen.add(line.line_id)
        _check_text(v, f + ".sku_code", line.sku_code, required=True)
        if hold.routed:
            v.check(
                not line.location_id,
                f + ".location_id",
                "must be empty when candidate_location_ids are given",
            )
        else:
            _check_text(v, f + ".location_id", line.location_id, required=True)
        v.check(line.quantity > 0, f + ".quantity", "must be greater than zero")
        v.check(line.quantity <= MAX_QUANTITY, f + ".quantity", "is too large")
    v.check(
        len(hold.candidates) <= MAX_CANDIDATES,
        "candidate_location_ids",
        f"at most {MAX_CANDIDATES} candidates",
    )
    v.check(
        len(hold.candidates) * len(hold.skus()) <= MAX_CANDIDATE_ROWS,
        "candidate_location_ids",
        f"candidates x distinct SKUs must be at most {MAX_CANDIDATE_ROWS}",
    )
    ranked: set[str] = set()
    for j, location_id in enumerate(hold.candidates):
        f = f"candidate_location_ids[{j}]"
        _check_text(v, f, location_id, required=True)
        v.check(location_id not in ranked, f, "is repeated")
        ranked.add(location_id)
    v.raise_if_any()


def _check_text(
    v: Validator, name: str, value: str, *, required: bool, limit: int = MAX_ID_LENGTH
) -> None:
    if required:
        v.check(bool(value), name, "is required")
    v.check(len(value) <= limit, name, f"must be at most {limit} characters")
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail the whole batch there.
    v.check("\x00" not in value, name, "must not contain NUL characters")


# --- references ----------------------------------------------------------------------------


def check_references(
    hold: Hold, locations: Mapping[str, Location], tracked: Collection[str]
) -> InvalidArgument | None:
    """The SKUs must be tracked and the locations known. A named location must also be
    active and serve the hold's channel (as for Reserve); a candidate that is inactive or
    does not serve the channel is only skipped, with the reason."""
    v = Validator()
    for i, line in enumerate(hold.lines):
        if line.sku_code not in tracked:
            v.add(f"lines[{i}].sku_code", f"SKU {line.sku_code} is not tracked by inventory")
        if hold.routed:
            continue
        field_name = f"lines[{i}].location_id"
        location = locations.get(line.location_id)
        if location is None:
            v.add(field_name, f"location {line.location_id} does not exist")
        elif not location.active:
            v.add(field_name, f"location {line.location_id} is not active")
        elif hold.channel and hold.channel not in location.channels:
            v.add(
                field_name,
                f"location {location.location_id} does not serve channel {hold.channel}",
            )
    for j, location_id in enumerate(hold.candidates):
        if location_id not in locations:
            v.add(f"candidate_location_ids[{j}]", f"location {location_id} does not exist")
    return InvalidArgument(v.violations) if v.violations else None


# --- replays -------------------------------------------------------------------------------


def same_hold(existing: Reservation, hold: Hold) -> bool:
    """Whether a hold sent again under its order id asks for what is already held: the
    same channel and lines (at one of its candidates, for a routed hold); a confirming
    hold only matches a confirmed reservation."""
    if hold.confirm and existing.status is not ReservationStatus.CONFIRMED:
        return False
    if not hold.routed:
        return same_request(existing, hold.channel, hold.lines)
    placed = {line.location_id for line in existing.lines}
    if existing.channel != hold.channel or len(placed) != 1 or not placed <= set(hold.candidates):
        return False
    asked = sorted((line.line_id, line.sku_code, line.quantity) for line in hold.lines)
    kept = sorted((line.line_id, line.sku_code, line.quantity) for line in existing.lines)
    return asked == kept


# --- deciding ------------------------------------------------------------------------------


def decide_batch(
    batch: Sequence[Hold],
    levels: Mapping[Key, StockLevel],
    locations: Mapping[str, Location],
    tracked: Collection[str],
    at: datetime,
    *,
    locations_version: int = 0,
) -> BatchPlan:
    """Decide each hold in order; a held hold's units are gone for the holds after it.

    ``levels`` holds every existing row the holds might take from (a missing row has
    nothing available); ``locations`` and ``tracked`` every location and SKU they name;
    ``locations_version`` the locations' version now (a routed hold ranked at another is
    refused as stale)."""
    plan = BatchPlan(decisions=[])
    current: dict[Key, StockLevel] = dict(levels)
    for hold in batch:
        if hold.routed and hold.locations_version and hold.locations_version != locations_version:
            plan.decisions.append(
                Decision(
                    error=StaleLocations(
                        f"the candidates were ranked at locations version "
                        f"{hold.locations_version}; it is {locations_version} now"
                    )
                )
            )
            continue
        invalid = check_references(hold, locations, tracked)
        if invalid is not None:
            plan.decisions.append(Decision(error=invalid))
            continue
        decision = (
            _first_fit(hold, current, locations, at)
            if hold.routed
            else _at_named(hold, current, locations, at)
        )
        if decision.held:
            _take(plan, current, hold, decision.lines)
        plan.decisions.append(decision)
    return plan


def _at_named(
    hold: Hold, current: Mapping[Key, StockLevel], locations: Mapping[str, Location], at: datetime
) -> Decision:
    for location_id in sorted(hold.locations()):
        unfit = _unfit(locations[location_id], hold, at)
        if unfit is not None:
            return Decision(
                error=FailedPrecondition(f"location {location_id} cannot take the hold: {unfit}"),
                skipped=(Skipped(location_id, unfit),),
            )
    # Sorted (location, sku): the short row named is the first one a lock pass would meet.
    for location_id, sku_code, quantity in holds(hold.lines):
        available = _available(current, location_id, sku_code)
        if available < quantity:
            return Decision(
                error=InsufficientStock(
                    f"not enough {sku_code} at {location_id}: "
                    f"{available} available, {quantity} asked"
                )
            )
    return Decision(lines=hold.lines)


def _first_fit(
    hold: Hold, current: Mapping[Key, StockLevel], locations: Mapping[str, Location], at: datetime
) -> Decision:
    needed = _needed_per_sku(hold.lines)
    skipped: list[Skipped] = []
    for location_id in hold.candidates:
        reason = _ineligible(locations[location_id], hold, at) or _short(
            current, location_id, needed
        )
        if reason is not None:
            skipped.append(Skipped(location_id, reason))
            continue
        placed = tuple(
            ReservationLine(line.line_id, line.sku_code, location_id, line.quantity)
            for line in hold.lines
        )
        return Decision(lines=placed, skipped=tuple(skipped))
    why = "; ".join(f"{s.location_id}: {s.reason}" for s in skipped)
    return Decision(
        error=NoLocationCanHold(f"no candidate location can take every line ({why})"),
        skipped=tuple(skipped),
    )


def _ineligible(location: Location, hold: Hold, at: datetime) -> str | None:
    if not location.active:
        return "not active"
    if hold.channel and hold.channel not in location.channels:
        return f"does not serve channel {hold.channel}"
    return _unfit(location, hold, at)


def _unfit(location: Location, hold: Hold, at: datetime) -> str | None:
    if hold.capability is not None and hold.capability not in location.capabilities:
        return f"lacks capability {hold.capability.value}"
    if hold.require_open_now and not is_open(location.opening_hours, location.time_zone, at):
        return "closed now"
    return None


def _short(
    current: Mapping[Key, StockLevel], location_id: str, needed: dict[str, int]
) -> str | None:
    shortfalls = [
        f"only {available} of {sku} available, {quantity} needed"
        for sku, quantity in needed.items()
        if (available := _available(current, location_id, sku)) < quantity
    ]
    return "; ".join(shortfalls) if shortfalls else None


def _needed_per_sku(lines: Sequence[ReservationLine]) -> dict[str, int]:
    needed: dict[str, int] = {}
    for line in sorted(lines, key=lambda line: line.sku_code):
        needed[line.sku_code] = needed.get(line.sku_code, 0) + line.quantity
    return needed


def _available(current: Mapping[Key, StockLevel], location_id: str, sku_code: str) -> int:
    level = current.get((location_id, sku_code))
    return level.available if level is not None else 0


def _take(
    plan: BatchPlan,
    current: dict[Key, StockLevel],
    hold: Hold,
    lines: Sequence[ReservationLine],
) -> None:
    for location_id, sku_code, quantity in holds(lines):
        key = (location_id, sku_code)
        level = current[key]
        if hold.confirm:
            # Held and gone at once: reserved is untouched, on hand leaves as a sale.
            after = StockLevel(
                location_id,
                sku_code,
                level.on_hand - quantity,
                level.reserved,
                level.safety_stock,
                level.in_transit,
            )
            plan.on_hand_delta[key] = plan.on_hand_delta.get(key, 0) - quantity
            plan.sales.append(Sale(hold.order_id, location_id, sku_code, quantity, after.on_hand))
        else:
            after = StockLevel(
                location_id,
                sku_code,
                level.on_hand,
                level.reserved + quantity,
                level.safety_stock,
                level.in_transit,
            )
            plan.reserved_delta[key] = plan.reserved_delta.get(key, 0) + quantity
        current[key] = after
        plan.levels[key] = after
