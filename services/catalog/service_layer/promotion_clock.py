"""The promotion clock: emits each promotion's started and ended events once, when its window
opens and closes, however many catalog replicas run it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from omni.catalog.v1 import events_pb2

from libs.unit_of_work import UnitOfWorkFactory
from services.catalog import metrics
from services.catalog.adapters.price_repository import PriceRepository
from services.catalog.service_layer.prices import promotion_to_proto

log = logging.getLogger(__name__)

BATCH = 100


async def emit_due_events(uow_factory: UnitOfWorkFactory, now: datetime | None = None) -> int:
    """Emit the started/ended events whose instant has passed; returns how many it emitted.

    Each promotion row is claimed with SELECT … FOR UPDATE SKIP LOCKED and marked in the same
    transaction as its outbox row, so two replicas never emit the same edge twice and a crash
    before commit leaves the edge for the next tick."""
    emitted = 0
    for edge in ("start", "end"):
        while True:
            async with uow_factory() as uow:
                at = now or datetime.now(UTC)
                prices = PriceRepository(uow.session)
                ids = await prices.claim_due_edges(edge, at, BATCH)
                if not ids:
                    break
                for promotion in await prices.load_promotions(ids):
                    message = promotion_to_proto(promotion)
                    event = (
                        events_pb2.PromotionStartedEvent(promotion=message)
                        if edge == "start"
                        else events_pb2.PromotionEndedEvent(promotion=message)
                    )
                    uow.emit(event, aggregate_id=promotion.promotion_id)
                await uow.commit()
            metrics.PROMOTION_EVENTS.labels("started" if edge == "start" else "ended").inc(len(ids))
            emitted += len(ids)
    return emitted


async def run_forever(uow_factory: UnitOfWorkFactory, interval_seconds: float) -> None:
    """Tick every ``interval_seconds``; a failed tick is logged and retried on the next one."""
    while True:
        try:
            await emit_due_events(uow_factory)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("promotion clock tick failed")
        await asyncio.sleep(interval_seconds)
