"""Stock use cases: movements, counts, bulk import, safety stock, quotas, ATP, nearest stock.

Every change of on hand goes through ``_apply`` and writes exactly one ledger movement whose
quantity is the change, so on hand always equals the sum of the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from omni.inventory.v1 import events_pb2

from libs.errors import DomainError, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.inventory import metrics
from services.inventory.adapters.location_repository import LocationRepository
from services.inventory.adapters.proto import level_to_proto
from services.inventory.adapters.stock_repository import ChangedLevel, StockRepository
from services.inventory.adapters.tracked_sku_repository import TrackedSkuRepository
from services.inventory.domain import geo
from services.inventory.domain.locations import CHANNEL_PATTERN, Capability
from services.inventory.domain.nearest_stock import NearbyStock, select_nearby
from services.inventory.domain.stock import (
    MAX_QUANTITY,
    ChannelAvailability,
    Movement,
    MovementKind,
    StockLevel,
    apply_delta,
    capped_by_quota,
    channel_availability,
    client_key,
    count_difference,
    on_hand_delta,
    validate_count,
    validate_movement,
)
from services.inventory.service_layer.references import check_references

MAX_AVAILABILITY_SKUS = 100
MAX_NEARBY_SKUS = 50
MAX_IMPORT_ROWS = 10_000


def emit_stock_changed(uow: UnitOfWork, changed: ChangedLevel, cause: str) -> None:
    """Tell the platform (gateway's channel stock sync, order routing) the new level and ATP."""
    uow.emit(
        events_pb2.StockChangedEvent(
            stock_level=level_to_proto(changed.level), channels=changed.channels, cause=cause
        ),
        aggregate_id=changed.level.sku_code,
    )


@dataclass(frozen=True)
class MovementResult:
    movement: Movement
    level: StockLevel
    # True when the idempotency key had been applied before: nothing changed now.
    duplicate: bool


async def record_movement(
    uow: UnitOfWork,
    *,
    location_id: str,
    sku_code: str,
    kind: MovementKind | None,
    quantity: int,
    reason: str,
    idempotency_key: str,
    reference: str = "",
    prefix: str = "",
    fallback_key: str = "",
) -> MovementResult:
    """Receipt, return (in), sale (out) or signed adjustment of on hand at one location.

    Rules: a tracked SKU at an active location; quantity > 0 (adjustments non-zero); on hand
    never below zero nor above MAX_LEVEL; the same idempotency key is applied once. The
    sender's key lives in its own namespace (``client_key``); without one, the service's
    ``fallback_key`` (made from the request id) is used."""
    validate_movement(kind, quantity, reason, idempotency_key, prefix, reference)
    assert kind is not None
    key = _ledger_key(idempotency_key, fallback_key, prefix)
    await check_references(
        uow,
        locations=[(prefix + "location_id", location_id)],
        skus=[(prefix + "sku_code", sku_code)],
    )
    return await _apply(uow, location_id, sku_code, kind, quantity, reason, key, reference, prefix)


async def record_count(
    uow: UnitOfWork,
    *,
    location_id: str,
    sku_code: str,
    counted_quantity: int,
    reason: str,
    idempotency_key: str,
    prefix: str = "",
    fallback_key: str = "",
) -> MovementResult:
    """A full count (盘点) replaces on hand; the ledger records the difference found. Keys
    as for ``record_movement``."""
    validate_count(counted_quantity, reason, idempotency_key, prefix)
    key = _ledger_key(idempotency_key, fallback_key, prefix)
    await check_references(
        uow,
        locations=[(prefix + "location_id", location_id)],
        skus=[(prefix + "sku_code", sku_code)],
    )
    return await _apply(
        uow,
        location_id,
        sku_code,
        MovementKind.COUNT,
        counted_quantity,
        reason,
        key,
        "",
        prefix,
    )


def _ledger_key(idempotency_key: str, fallback_key: str, prefix: str) -> str:
    if idempotency_key:
        return client_key(idempotency_key)
    if not fallback_key:
        raise InvalidArgument.field(prefix + "idempotency_key", "is required")
    return fallback_key


async def _apply(
    uow: UnitOfWork,
    location_id: str,
    sku_code: str,
    kind: MovementKind,
    amount: int,
    reason: str,
    idempotency_key: str,
    reference: str,
    prefix: str,
) -> MovementResult:
    repo = StockRepository(uow.session)
    await repo.ensure(location_id, sku_code)
    # The level's row lock serialises movements of one level, so a retry with the same key
    # that raced the first attempt sees its committed movement below.
    locked = await repo.lock(location_id, sku_code)
    assert locked is not None, "level was just ensured"
    existing = await repo.movement_by_key(idempotency_key)
    if existing is not None:
        if not existing.repeats(location_id, sku_code, kind, amount):
            raise InvalidArgument.field(
                prefix + "idempotency_key", "was already used for a different movement"
            )
        return MovementResult(existing, locked.level, True)
    if kind is MovementKind.COUNT:
        delta, counted = count_difference(locked.level, amount), amount
    else:
        delta, counted = on_hand_delta(kind, amount), None
    after = apply_delta(locked.level, delta)
    changed = await repo.set_on_hand(location_id, sku_code, after.on_hand)
    movement = await repo.add_movement(
        location_id=location_id,
        sku_code=sku_code,
        kind=kind,
        quantity=delta,
        on_hand_after=after.on_hand,
        reason=reason,
        idempotency_key=idempotency_key,
        reference=reference,
        counted_quantity=counted,
    )
    emit_stock_changed(uow, changed, kind.value)
    uow.after_commit(lambda: count_movement(kind, abs(delta)))
    return MovementResult(movement, changed.level, False)


def count_movement(kind: MovementKind, units: int) -> None:
    """Business metrics of one applied movement (call once its transaction committed)."""
    metrics.MOVEMENTS.labels(kind.value).inc()
    metrics.MOVEMENT_UNITS.labels(kind.value).inc(units)


@dataclass(frozen=True)
class ImportRow:
    location_id: str
    sku_code: str
    kind: MovementKind | None
    # The delta, or the counted quantity for COUNT.
    quantity: int
    idempotency_key: str
    reason: str


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    description: str


@dataclass
class ImportResult:
    applied: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)


async def import_stock(
    uow: UnitOfWork,
    rows: Sequence[ImportRow | None],
    key_prefix: str,
    parse_errors: Sequence[RowError] = (),
) -> ImportResult:
    """Apply many deltas and counts at once (ERP export, store file). Each row stands alone:
    a bad row is reported (row number, field, why) and skipped, the good ones are applied.
    Rows without an idempotency key get one from the import's request id and row number."""
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidArgument.field("rows", f"at most {MAX_IMPORT_ROWS} rows per import")
    if not rows and not parse_errors:
        raise InvalidArgument.field("rows", "at least one row is required")
    result = ImportResult(errors=list(parse_errors))
    for number, row in enumerate(rows, start=1):
        if row is None:  # unparseable line, already in parse_errors
            continue
        key = f"{key_prefix}:{number}"
        try:
            async with uow.session.begin_nested():
                if row.kind is MovementKind.COUNT:
                    outcome = await record_count(
                        uow,
                        location_id=row.location_id,
                        sku_code=row.sku_code,
                        counted_quantity=row.quantity,
                        reason=row.reason,
                        idempotency_key=row.idempotency_key,
                        fallback_key=key,
                    )
                else:
                    outcome = await record_movement(
                        uow,
                        location_id=row.location_id,
                        sku_code=row.sku_code,
                        kind=row.kind,
                        quantity=row.quantity,
                        reason=row.reason,
                        idempotency_key=row.idempotency_key,
                        fallback_key=key,
                    )
        except InvalidArgument as error:
            result.errors += [RowError(number, v.field, v.description) for v in error.violations]
            continue
        except DomainError as error:
            result.errors.append(RowError(number, "quantity", error.message))
            continue
        if outcome.duplicate:
            result.duplicates += 1
        else:
            result.applied += 1
    result.errors.sort(key=lambda e: e.row)
    uow.after_commit(lambda: _count_import(result))
    return result


def _count_import(result: ImportResult) -> None:
    metrics.IMPORT_ROWS.labels("applied").inc(result.applied)
    metrics.IMPORT_ROWS.labels("duplicate").inc(result.duplicates)
    metrics.IMPORT_ROWS.labels("rejected").inc(len({e.row for e in result.errors}))


async def set_safety_stock(
    uow: UnitOfWork, location_id: str, sku_code: str, safety_stock: int
) -> StockLevel:
    """Override the buffer of one SKU at one location (never promised to any channel)."""
    v = Validator()
    v.check(
        0 <= safety_stock <= MAX_QUANTITY,
        "safety_stock",
        f"must be between 0 and {MAX_QUANTITY}",
    )
    v.raise_if_any()
    await check_references(
        uow, locations=[("location_id", location_id)], skus=[("sku_code", sku_code)]
    )
    repo = StockRepository(uow.session)
    await repo.ensure(location_id, sku_code)
    changed = await repo.set_safety(location_id, sku_code, safety_stock)
    emit_stock_changed(uow, changed, "safety_stock")
    return changed.level


async def set_channel_quota(
    uow: UnitOfWork, channel: str, sku_code: str, quota: int | None
) -> None:
    """Cap what a channel is promised for a SKU (e.g. a marketplace gets at most 100)."""
    v = Validator()
    v.check(bool(CHANNEL_PATTERN.match(channel)), "channel", "is required (letters, digits, .:_-)")
    v.check(
        quota is None or 0 <= quota <= MAX_QUANTITY,
        "quota",
        f"must be between 0 and {MAX_QUANTITY}",
    )
    v.raise_if_any()
    await check_references(uow, skus=[("sku_code", sku_code)])
    await StockRepository(uow.session).set_quota(channel, sku_code, quota)


async def get_stock_level(uow: UnitOfWork, location_id: str, sku_code: str) -> StockLevel:
    if await LocationRepository(uow.session).get(location_id) is None:
        raise NotFound(f"location {location_id} does not exist")
    if not await TrackedSkuRepository(uow.session).existing([sku_code]):
        raise NotFound(f"SKU {sku_code} is not tracked by inventory")
    level = await StockRepository(uow.session).get(location_id, sku_code)
    return level if level is not None else StockLevel(location_id, sku_code)


async def list_movements(
    uow: UnitOfWork, location_id: str, sku_code: str, after_id: int, page_size: int
) -> tuple[list[Movement], int]:
    await get_stock_level(uow, location_id, sku_code)
    page = await StockRepository(uow.session).movements(
        location_id, sku_code, after_id, page_size + 1
    )
    more = len(page) > page_size
    page = page[:page_size]
    return page, (page[-1].movement_id if more and page else 0)


@dataclass(frozen=True)
class SkuAvailabilityResult:
    totals: ChannelAvailability
    locations: list[StockLevel]


def _validate_sku_list(v: Validator, sku_codes: Sequence[str], field: str, limit: int) -> None:
    v.check(bool(sku_codes), field, "at least one SKU is required")
    v.check(len(sku_codes) <= limit, field, f"at most {limit} SKUs")
    for i, sku in enumerate(sku_codes):
        v.check(bool(sku), f"{field}[{i}]", "is required")


async def get_availability(
    uow: UnitOfWork, channel: str, sku_codes: Sequence[str], include_locations: bool
) -> list[SkuAvailabilityResult]:
    """ATP for a channel: over the active locations that serve it, on hand - reserved -
    safety per location (never below zero), summed, capped by the channel's quota."""
    v = Validator()
    _validate_sku_list(v, sku_codes, "sku_codes", MAX_AVAILABILITY_SKUS)
    v.check(not channel or bool(CHANNEL_PATTERN.match(channel)), "channel", "is malformed")
    v.raise_if_any()
    await check_references(uow, skus=[(f"sku_codes[{i}]", s) for i, s in enumerate(sku_codes)])
    repo = StockRepository(uow.session)
    unique = list(dict.fromkeys(sku_codes))
    quotas = await repo.quotas(channel, unique) if channel else {}
    if include_locations:
        per_sku: dict[str, list[StockLevel]] = {sku: [] for sku in unique}
        for level in await repo.eligible_levels(channel, unique):
            per_sku[level.sku_code].append(level)
        return [
            SkuAvailabilityResult(
                channel_availability(sku, per_sku[sku], quotas.get(sku)), per_sku[sku]
            )
            for sku in sku_codes
        ]
    totals = await repo.eligible_totals(channel, unique)
    return [
        SkuAvailabilityResult(
            capped_by_quota(
                totals.get(sku, ChannelAvailability(sku, 0, 0, 0, 0, 0, None)), quotas.get(sku)
            ),
            [],
        )
        for sku in sku_codes
    ]


async def find_nearest_stock(
    uow: UnitOfWork,
    *,
    latitude: float,
    longitude: float,
    radius_m: float,
    wanted: Sequence[tuple[str, int]],
    capability: Capability | None,
    open_now: bool,
    channel: str,
    require_all: bool,
    max_results: int,
    at: datetime,
) -> list[NearbyStock]:
    """Active locations within the radius that hold some of the SKUs (available > 0) and have
    the capability, nearest first (附近门店)."""
    v = Validator()
    v.check(-90 <= latitude <= 90, "latitude", "must be between -90 and 90")
    v.check(-180 <= longitude <= 180, "longitude", "must be between -180 and 180")
    v.check(0 < radius_m <= geo.MAX_RADIUS_M, "radius_meters", "must be > 0 and at most 1,000 km")
    _validate_sku_list(v, [sku for sku, _ in wanted], "skus", MAX_NEARBY_SKUS)
    for i, (_, qty) in enumerate(wanted):
        v.check(qty >= 0, f"skus[{i}].quantity", "must not be negative")
    v.check(0 <= max_results <= 200, "max_results", "must be between 0 and 200")
    v.check(not channel or bool(CHANNEL_PATTERN.match(channel)), "channel", "is malformed")
    v.raise_if_any()
    await check_references(
        uow, skus=[(f"skus[{i}].sku_code", s) for i, (s, _) in enumerate(wanted)]
    )
    candidates = await StockRepository(uow.session).nearby(
        latitude=latitude,
        longitude=longitude,
        radius_m=radius_m,
        box=geo.bounding_box(latitude, longitude, radius_m),
        sku_codes=[sku for sku, _ in wanted],
        capability=capability.value if capability else "",
        channel=channel,
    )
    return select_nearby(
        candidates,
        wanted,
        open_now=open_now,
        require_all=require_all,
        at=at,
        limit=max_results or 20,
    )
