"""The outbox relay: publishes committed outbox rows to Kafka and marks them, retrying until
the broker acknowledges. Several relays of one service share the work without publishing a
row twice in the normal case (a crash between publish and mark republishes; inboxes dedupe)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from libs.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
)
from libs.platform_tables import OUTBOX_BUCKETS, outbox
from libs.telemetry import context_from_mapping, inject_context, mapping_to_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# Advisory-lock namespace for outbox buckets ("outb").
_BUCKET_LOCK_NAMESPACE = 0x6F757462


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        producer: AIOKafkaProducer,
        service: str,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=3),
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.db = db
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.retention = retention
        self.wakeup = wakeup or asyncio.Event()
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self.db.session() as session, session.begin():
            # Half the buckets first, so a second relay finds the other half free and the
            # two share a backlog; when that half is idle, whatever else is free.
            buckets = await self._claim_buckets(session, limit=OUTBOX_BUCKETS // 2)
            rows = await self._pending(session, buckets)
            if not rows and len(buckets) == OUTBOX_BUCKETS // 2:
                rows = await self._pending(session, await self._claim_buckets(session))
            if not rows:
                return 0
            await self._publish(rows)
            await self._mark_published(session, [row.id for row in rows])
        return len(rows)

    async def _pending(self, session: AsyncSession, buckets: list[int]) -> Sequence[Any]:
        if not buckets:
            return []
        return (
            await session.execute(
                sa.select(
                    outbox.c.id,
                    outbox.c.topic,
                    outbox.c.key,
                    outbox.c.event_type,
                    outbox.c.envelope,
                    outbox.c.trace_context,
                )
                .where(outbox.c.published_at.is_(None), outbox.c.bucket.in_(buckets))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()

    async def _claim_buckets(self, session: AsyncSession, limit: int = OUTBOX_BUCKETS) -> list[int]:
        """Try-lock free buckets in random order, at most ``limit`` of them. Transaction-
        scoped: released at commit or when the relay's connection dies. Locks taken
        earlier in the same transaction are re-entrant, so a second claim adds to the first."""
        order = list(range(OUTBOX_BUCKETS))
        random.shuffle(order)
        result = await session.execute(
            sa.text(
                "SELECT b FROM unnest(CAST(:order AS int[])) AS b "
                "WHERE pg_try_advisory_xact_lock(:ns, b) LIMIT :limit"
            ),
            {"order": order, "ns": _BUCKET_LOCK_NAMESPACE, "limit": limit},
        )
        return [row[0] for row in result]

    async def _publish(self, rows: Sequence[Any]) -> None:
        futures = []
        for row in rows:
            parent = context_from_mapping(row.trace_context or {})
            with tracer.start_as_current_span(
                f"{row.topic} publish",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": row.topic,
                    "messaging.message.type": row.event_type,
                    "omni.service": self.service,
                },
            ):
                headers = mapping_to_headers(inject_context())
                headers.append(("event_type", row.event_type.encode()))
                futures.append(
                    await self.producer.send(
                        row.topic, value=row.envelope, key=row.key.encode(), headers=headers
                    )
                )
        await asyncio.gather(*futures)
        for row in rows:
            OUTBOX_PUBLISHED.labels(self.service, row.topic).inc()

    async def _mark_published(self, session: AsyncSession, ids: list[int]) -> None:
        await session.execute(
            outbox.update().where(outbox.c.id.in_(ids)).values(published_at=sa.func.now())
        )

    async def refresh_metrics(self) -> None:
        async with self.db.session() as session:
            row = (
                await session.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.coalesce(
                            sa.func.extract(
                                "epoch", sa.func.now() - sa.func.min(outbox.c.created_at)
                            ),
                            0,
                        ),
                    ).where(outbox.c.published_at.is_(None))
                )
            ).one()
        OUTBOX_BACKLOG.labels(self.service).set(row[0])
        OUTBOX_OLDEST_AGE.labels(self.service).set(float(row[1]))

    async def purge_published(self) -> int:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                outbox.delete().where(
                    outbox.c.published_at.is_not(None),
                    outbox.c.published_at < sa.func.now() - self.retention,
                )
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def run_forever(self) -> None:
        """Publish until stopped; on errors back off exponentially and try again."""
        backoff = self.poll_interval
        loop = asyncio.get_running_loop()
        next_metrics = 0.0
        next_purge = loop.time() + 60
        while not self._stopping.is_set():
            try:
                # Cleared before reading, so a commit during the read still wakes the next wait.
                self.wakeup.clear()
                published = await self.run_once()
                backoff = self.poll_interval
                if loop.time() >= next_metrics:
                    await self.refresh_metrics()
                    next_metrics = loop.time() + 5
                if loop.time() >= next_purge:
                    await self.purge_published()
                    next_purge = loop.time() + 3600
                if published:
                    continue
                await self._sleep(self.poll_interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                OUTBOX_PUBLISH_FAILURES.labels(self.service).inc()
                log.exception("outbox publish failed; retrying", extra={"backoff_s": backoff})
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        # Stopping: publish what was committed meanwhile (the caller bounds how long this takes).
        try:
            while await self.run_once():
                pass
        except Exception:
            log.exception("final outbox publish failed; the next start publishes it")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout=seconds)

    async def stop(self) -> None:
        """Ask the loop to finish; it publishes what is left before it returns."""
        self._stopping.set()
        self.wakeup.set()
