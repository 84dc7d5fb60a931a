"""Transfer use cases (调货): request, ship (transfer out at the source, in transit at the
destination), receive (transfer in, discrepancies recorded)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from google.protobuf.timestamp_pb2 import Timestamp
from omni.inventory.v1 import events_pb2

from libs.errors import FailedPrecondition, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.inventory import metrics
from services.inventory.adapters.proto import transfer_to_proto
from services.inventory.adapters.stock_repository import StockRepository
from services.inventory.adapters.transfer_repository import TransferRepository
from services.inventory.domain import transfers as rules
from services.inventory.domain.locations import Capability
from services.inventory.domain.stock import MAX_LEVEL, InsufficientStock, MovementKind
from services.inventory.domain.transfers import Transfer, TransferLine, TransferStatus
from services.inventory.service_layer.references import check_references
from services.inventory.service_layer.stock import emit_stock_changed


async def request_transfer(
    uow: UnitOfWork,
    from_location_id: str,
    to_location_id: str,
    lines: Sequence[tuple[str, int]],
    reason: str,
    now: datetime,
) -> Transfer:
    """Ask for goods to move between two active locations that both handle transfers."""
    rules.validate_request(from_location_id, to_location_id, lines, reason)
    found = await check_references(
        uow,
        locations=[("from_location_id", from_location_id), ("to_location_id", to_location_id)],
        skus=[(f"lines[{i}].sku_code", sku) for i, (sku, _) in enumerate(lines)],
    )
    v = Validator()
    for field, location_id in (
        ("from_location_id", from_location_id),
        ("to_location_id", to_location_id),
    ):
        v.check(
            Capability.TRANSFER in found[location_id].capabilities,
            field,
            f"location {location_id} does not handle transfers",
        )
    v.raise_if_any()
    transfer = Transfer(
        transfer_id=uuid.uuid4().hex,
        from_location_id=from_location_id,
        to_location_id=to_location_id,
        status=TransferStatus.REQUESTED,
        lines=tuple(TransferLine(sku, qty) for sku, qty in sorted(lines)),
        reason=reason,
        requested_at=now,
    )
    await TransferRepository(uow.session).add(transfer)
    uow.after_commit(metrics.TRANSFERS.labels("requested").inc)
    return transfer


async def _lock(uow: UnitOfWork, transfer_id: str) -> Transfer:
    if not transfer_id:
        raise InvalidArgument.field("transfer_id", "is required")
    found = await TransferRepository(uow.session).get(transfer_id, for_update=True)
    if found is None:
        raise NotFound(f"transfer {transfer_id} does not exist")
    return found


async def get_transfer(uow: UnitOfWork, transfer_id: str) -> Transfer:
    found = await TransferRepository(uow.session).get(transfer_id)
    if found is None:
        raise NotFound(f"transfer {transfer_id} does not exist")
    return found


async def ship(
    uow: UnitOfWork, transfer_id: str, shipped: Sequence[tuple[str, int]], now: datetime
) -> Transfer:
    """Goods leave the source (TRANSFER_OUT, only units no order holds) and show as in
    transit at the destination."""
    transfer = rules.ship(await _lock(uow, transfer_id), shipped, now)
    stock = StockRepository(uow.session)
    steps = sorted(
        [(transfer.from_location_id, line) for line in transfer.lines if line.shipped]
        + [(transfer.to_location_id, line) for line in transfer.lines if line.shipped],
        key=lambda step: (step[0], step[1].sku_code),
    )
    for location_id, line in steps:
        await stock.ensure(location_id, line.sku_code)
        if location_id == transfer.from_location_id:
            changed = await stock.take_unreserved(location_id, line.sku_code, line.shipped)
            if changed is None:
                raise InsufficientStock(
                    f"{line.sku_code} at {location_id}: fewer than {line.shipped} unreserved "
                    "units on hand"
                )
            await stock.add_movement(
                location_id=location_id,
                sku_code=line.sku_code,
                kind=MovementKind.TRANSFER_OUT,
                quantity=-line.shipped,
                on_hand_after=changed.level.on_hand,
                reason=transfer.reason or "transfer shipped",
                idempotency_key=f"transfer:{transfer.transfer_id}:{line.sku_code}:out",
                reference=transfer.transfer_id,
            )
            emit_stock_changed(uow, changed, MovementKind.TRANSFER_OUT.value)
        else:
            arriving = await stock.add_in_transit(location_id, line.sku_code, line.shipped)
            if arriving is None:
                raise FailedPrecondition(
                    f"{line.sku_code} at {location_id}: in transit would exceed {MAX_LEVEL} units"
                )
            emit_stock_changed(uow, arriving, "in_transit")
    await TransferRepository(uow.session).save_progress(transfer)
    uow.emit(
        events_pb2.TransferShippedEvent(transfer=transfer_to_proto(transfer)),
        aggregate_id=transfer.transfer_id,
    )
    uow.after_commit(metrics.TRANSFERS.labels("shipped").inc)
    return transfer


async def receive(
    uow: UnitOfWork, transfer_id: str, received: Sequence[tuple[str, int]], now: datetime
) -> Transfer:
    """Goods arrive: in transit goes down by what was shipped, on hand up by what arrived
    (TRANSFER_IN); a difference stays on the line as the discrepancy."""
    transfer = rules.receive(await _lock(uow, transfer_id), received, now)
    stock = StockRepository(uow.session)
    for line in transfer.lines:  # one location, lines sorted by SKU
        if not line.shipped and not line.received:
            continue
        await stock.ensure(transfer.to_location_id, line.sku_code)
        changed = await stock.arrive(
            transfer.to_location_id, line.sku_code, line.shipped, line.received
        )
        if changed is None:
            raise FailedPrecondition(
                f"{line.sku_code} at {transfer.to_location_id}: in transit below {line.shipped}"
                f" or on hand would exceed {MAX_LEVEL} units"
            )
        if line.received:
            await stock.add_movement(
                location_id=transfer.to_location_id,
                sku_code=line.sku_code,
                kind=MovementKind.TRANSFER_IN,
                quantity=line.received,
                on_hand_after=changed.level.on_hand,
                reason=transfer.reason or "transfer received",
                idempotency_key=f"transfer:{transfer.transfer_id}:{line.sku_code}:in",
                reference=transfer.transfer_id,
            )
        emit_stock_changed(uow, changed, MovementKind.TRANSFER_IN.value)
        uow.after_commit(partial(metrics.TRANSFER_DISCREPANCY_UNITS.inc, line.missing))
    await TransferRepository(uow.session).save_progress(transfer)
    uow.emit(
        events_pb2.TransferReceivedEvent(transfer=transfer_to_proto(transfer)),
        aggregate_id=transfer.transfer_id,
    )
    uow.after_commit(metrics.TRANSFERS.labels("received").inc)
    return transfer


async def cancel(uow: UnitOfWork, transfer_id: str, reason: str, now: datetime) -> Transfer:
    """Call off a requested transfer (e.g. the order it served was cancelled); a shipped or
    received one is FAILED_PRECONDITION, a cancelled one stays as it is."""
    current = await _lock(uow, transfer_id)
    cancelled = rules.cancel(current, reason)
    if cancelled is current:
        return current
    await TransferRepository(uow.session).save_progress(cancelled)
    cancel_time = Timestamp()
    cancel_time.FromDatetime(now)
    uow.emit(
        events_pb2.TransferCancelledEvent(
            transfer=transfer_to_proto(cancelled), reason=reason, cancel_time=cancel_time
        ),
        aggregate_id=cancelled.transfer_id,
    )
    metrics.TRANSFERS.labels("cancelled").inc()
    return cancelled
