"""The reservation sweeper: a background task of every replica that expires reservations
whose time ran out (the rows are shared out with SKIP LOCKED, see expire_due)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from libs.unit_of_work import UnitOfWorkFactory
from services.inventory.service_layer.reservations import expire_due

log = logging.getLogger(__name__)


async def run_sweeper(uow_factory: UnitOfWorkFactory, interval_seconds: float, batch: int) -> None:
    while True:
        try:
            expired = await expire_due(uow_factory, datetime.now(UTC), batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A database hiccup must not kill the sweeper; the next round retries.
            log.exception("reservation sweep failed")
            expired = 0
        if expired:
            log.info("reservations expired", extra={"count": expired})
        if expired < batch:
            await asyncio.sleep(interval_seconds)
