"""The order service's background task (every replica runs one): resumes orders left
mid-step by a crash, expires unpaid orders, retries or cancels unfillable ones, finishes
restocking of returns. Shared work is split between replicas with SKIP LOCKED and leases."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from services.order.service_layer.context import OrderContext
from services.order.service_layer.orders import recover_once

log = logging.getLogger(__name__)


async def run_background(ctx: OrderContext) -> None:
    # The first round runs at once: a restarted process resumes what it left behind.
    while True:
        try:
            done = await recover_once(ctx, datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception:
            # Inventory or the database down for a moment must not end the task.
            log.exception("order background round failed")
            done = 0
        if done:
            log.info("order background round", extra={"work": done})
        await asyncio.sleep(ctx.config.recovery_interval_seconds)
