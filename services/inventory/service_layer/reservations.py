"""Reservation use cases: confirm (goods left), release, move, expire; holds are taken by
the reservation engine (service_layer/reservation_engine.py). Stock rows are always changed
in (location, sku) order, so concurrent reservations over the same rows queue instead of
deadlocking; the reservation row is locked before any stock row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from omni.inventory.v1 import events_pb2

from libs.errors import FailedPrecondition, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.inventory import metrics
from services.inventory.adapters.proto import reservation_to_proto, timestamp
from services.inventory.adapters.reservation_repository import ReservationRepository
from services.inventory.adapters.stock_repository import StockRepository
from services.inventory.domain.locations import Location
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
    Transition,
    find_line,
    holds,
    transition,
)
from services.inventory.domain.stock import InsufficientStock, MovementKind
from services.inventory.service_layer.references import check_references
from services.inventory.service_layer.stock import count_movement, emit_stock_changed


def _check_channel(v: Validator, channel: str, location: Location | None, field: str) -> None:
    if channel and location is not None and channel not in location.channels:
        v.add(field, f"location {location.location_id} does not serve channel {channel}")


async def _load(reservations: ReservationRepository, order_id: str) -> Reservation:
    found = await reservations.get(order_id)
    assert found is not None, "reservation was written in this transaction"
    return found


async def _lock(uow: UnitOfWork, order_id: str) -> Reservation:
    if not order_id:
        raise InvalidArgument.field("order_id", "is required")
    found = await ReservationRepository(uow.session).get(order_id, for_update=True)
    if found is None:
        raise NotFound(f"no reservation for order {order_id}")
    return found


async def get_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    found = await ReservationRepository(uow.session).get(order_id)
    if found is None:
        raise NotFound(f"no reservation for order {order_id}")
    return found


async def confirm(uow: UnitOfWork, order_id: str) -> Reservation:
    """Goods left: each held unit leaves on hand and reserved as a SALE movement in the
    ledger. Confirming twice changes nothing; a released or expired hold cannot be."""
    reservation = await _lock(uow, order_id)
    if transition(reservation, ReservationStatus.CONFIRMED) is Transition.ALREADY_DONE:
        return reservation
    stock = StockRepository(uow.session)
    for location_id, sku_code, quantity in holds(reservation.lines):
        changed = await stock.consume_reserved(location_id, sku_code, quantity)
        if changed is None:
            raise FailedPrecondition(
                f"{sku_code} at {location_id}: on hand is below the reserved units "
                "(a count found less); count again or release the reservation"
            )
        await stock.add_movement(
            location_id=location_id,
            sku_code=sku_code,
            kind=MovementKind.SALE,
            quantity=-quantity,
            on_hand_after=changed.level.on_hand,
            reason="reservation confirmed",
            idempotency_key=f"reservation:{order_id}:{location_id}:{sku_code}",
            reference=order_id,
        )
        emit_stock_changed(uow, changed, MovementKind.SALE.value)
        uow.after_commit(partial(count_movement, MovementKind.SALE, quantity))
    await ReservationRepository(uow.session).set_status(order_id, ReservationStatus.CONFIRMED)
    uow.after_commit(metrics.RESERVATION_ENDINGS.labels("confirmed").inc)
    return await _load(ReservationRepository(uow.session), order_id)


async def release(uow: UnitOfWork, order_id: str) -> Reservation:
    """The order was cancelled: the held units become available again. Releasing twice
    changes nothing; a confirmed reservation cannot be released (the goods are gone)."""
    reservation = await _lock(uow, order_id)
    if transition(reservation, ReservationStatus.RELEASED) is Transition.ALREADY_DONE:
        return reservation
    await _give_back(uow, reservation.lines, "released")
    await ReservationRepository(uow.session).set_status(order_id, ReservationStatus.RELEASED)
    uow.after_commit(metrics.RESERVATION_ENDINGS.labels("released").inc)
    return await _load(ReservationRepository(uow.session), order_id)


async def _give_back(uow: UnitOfWork, lines: Sequence[ReservationLine], cause: str) -> None:
    stock = StockRepository(uow.session)
    for location_id, sku_code, quantity in holds(lines):
        changed = await stock.release(location_id, sku_code, quantity)
        if changed is None:
            # The level holds fewer reserved units than this reservation: a broken
            # invariant, never a caller's mistake; roll back rather than hide it.
            raise RuntimeError(f"reserved of {sku_code} at {location_id} below {quantity}")
        emit_stock_changed(uow, changed, cause)


async def move(uow: UnitOfWork, order_id: str, line_id: str, to_location_id: str) -> Reservation:
    """Hold a line at another location instead (e.g. routing changed its mind): the target
    must have it available, or nothing changes."""
    v = Validator()
    v.check(bool(line_id), "line_id", "is required")
    v.raise_if_any()
    reservation = await _lock(uow, order_id)
    if reservation.status is not ReservationStatus.ACTIVE:
        raise FailedPrecondition(
            f"reservation for order {order_id} is {reservation.status.value}; only an active "
            "reservation can move"
        )
    line = find_line(reservation, line_id)
    found = await check_references(uow, locations=[("to_location_id", to_location_id)])
    _check_channel(v, reservation.channel, found.get(to_location_id), "to_location_id")
    v.raise_if_any()
    if line.location_id == to_location_id:
        return reservation
    stock = StockRepository(uow.session)
    await stock.ensure(to_location_id, line.sku_code)
    # Two stock rows: touch them in (location, sku) order like every other writer.
    for location_id in sorted((line.location_id, to_location_id)):
        if location_id == line.location_id:
            released = await stock.release(location_id, line.sku_code, line.quantity)
            if released is None:
                raise RuntimeError(f"reserved of {line.sku_code} at {location_id} too low")
            emit_stock_changed(uow, released, "moved")
        else:
            held = await stock.reserve_if_available(location_id, line.sku_code, line.quantity)
            if held is None:
                level = await stock.get(location_id, line.sku_code)
                raise InsufficientStock(
                    f"not enough {line.sku_code} at {location_id}: "
                    f"{level.available if level else 0} available, {line.quantity} asked"
                )
            emit_stock_changed(uow, held, "moved")
    reservations = ReservationRepository(uow.session)
    await reservations.move_line(order_id, line_id, to_location_id)
    return await _load(reservations, order_id)


async def expire_due(uow_factory: UnitOfWorkFactory, now: datetime, limit: int = 100) -> int:
    """Release reservations whose time ran out and announce each (ReservationExpiredEvent).

    Safe with several replicas: due rows are taken with FOR UPDATE SKIP LOCKED, so each is
    expired by exactly one sweeper, and a confirm racing the sweeper either wins (the
    sweeper skips or no longer sees it as active) or waits and then finds it expired."""
    async with uow_factory() as uow:
        reservations = ReservationRepository(uow.session)
        due = [
            await _load(reservations, order_id)
            for order_id in await reservations.lock_due(now, limit)
        ]
        if not due:
            return 0
        # One sorted pass over all their lines keeps the global lock order.
        await _give_back(uow, [line for r in due for line in r.lines], "expired")
        for reservation in due:
            await reservations.set_status(reservation.order_id, ReservationStatus.EXPIRED)
            expired = await _load(reservations, reservation.order_id)
            uow.emit(
                events_pb2.ReservationExpiredEvent(
                    reservation=reservation_to_proto(expired),
                    expire_time=timestamp(reservation.expires_at),
                ),
                aggregate_id=reservation.order_id,
            )
        await uow.commit()
    metrics.RESERVATION_ENDINGS.labels("expired").inc(len(due))
    return len(due)
