"""The outbox relay: publishes committed outbox rows to Kafka in batches and marks them,
retrying until the broker acknowledges.

One batch is one transaction on a plain asyncpg connection: claim free buckets (advisory
locks, one statement), read up to ``batch_size`` unpublished rows of those buckets (one
statement), hand them all to the producer and wait for the broker's acknowledgements, mark
them published (one statement), commit. A bucket holds every row of a key, and one relay at
a time owns a bucket, so a key's events leave in the order they were written even with
several relays running; those relays share a backlog by claiming different buckets. A crash
between publish and mark republishes the batch (at-least-once; inboxes drop the copies).

When a commit wakes the relay it lingers a few milliseconds first, so the rows of
concurrent transactions leave together instead of one transaction per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from libs.db import Database
from libs.messaging import EVENT_TYPE_HEADER, sampled
from libs.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_BATCH_EVENTS,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISH_DELAY,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
)
from libs.platform_tables import OUTBOX_BUCKETS
from libs.telemetry import context_from_mapping, inject_context, mapping_to_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# Advisory-lock namespace for outbox buckets ("outb").
_BUCKET_LOCK_NAMESPACE = 0x6F757462

# Try-lock free buckets in the given order, at most $3 of them. Transaction-scoped: released
# at commit or when the connection dies. Locks taken earlier in the same transaction are
# re-entrant, so a second claim adds to the first.
_CLAIM = "SELECT b FROM unnest($1::int[]) AS b WHERE pg_try_advisory_xact_lock($2, b) LIMIT $3"

# The oldest rows of each claimed bucket (index on bucket, id), then the oldest $2 of those:
# every bucket contributes a prefix of its rows, which is what keeps each key in order. Run
# after the claim, so its snapshot sees everything the buckets' previous owner committed.
_PENDING = """
WITH chosen AS (
    SELECT c.id
    FROM unnest($1::smallint[]) AS b(bucket)
    CROSS JOIN LATERAL (
        SELECT id FROM outbox
        WHERE published_at IS NULL AND bucket = b.bucket
        ORDER BY id LIMIT $2
    ) AS c
    ORDER BY c.id
    LIMIT $2
)
SELECT o.id, o.topic, o.key, o.event_type, o.envelope,
       o.trace_context::text AS trace_context,
       extract(epoch FROM o.created_at)::float8 AS created
FROM outbox AS o JOIN chosen USING (id)
ORDER BY o.id
"""

_MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        producer: AIOKafkaProducer,
        service: str,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        linger: float = 0.005,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=3),
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.db = db
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.linger = linger
        self.max_backoff = max_backoff
        self.retention = retention
        self.wakeup = wakeup or asyncio.Event()
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self._connection() as conn, conn.transaction():
            # Half the buckets first, so a second relay finds the other half free and the
            # two share a backlog; when that half is idle, whatever else is free.
            buckets = await self._claim_buckets(conn, limit=OUTBOX_BUCKETS // 2)
            rows = await self._pending(conn, buckets)
            if not rows and len(buckets) == OUTBOX_BUCKETS // 2:
                rows = await self._pending(conn, await self._claim_buckets(conn))
            if not rows:
                return 0
            await self._publish(rows)
            await self._mark_published(conn, [row["id"] for row in rows])
        return len(rows)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The driver connection under one of the service's pooled connections: no Session
        (a few hundred microseconds per transaction) for a loop that runs all day."""
        async with self.db.engine.connect() as pooled:
            raw = await pooled.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection
            try:
                yield conn
            except BaseException:
                if conn.is_closed():
                    # Not through SQLAlchemy, so it cannot tell: drop it from the pool.
                    await pooled.invalidate()
                raise

    async def _claim_buckets(
        self, conn: asyncpg.Connection, limit: int = OUTBOX_BUCKETS
    ) -> list[int]:
        order = list(range(OUTBOX_BUCKETS))
        random.shuffle(order)
        rows = await conn.fetch(_CLAIM, order, _BUCKET_LOCK_NAMESPACE, limit)
        return [row[0] for row in rows]

    async def _pending(self, conn: asyncpg.Connection, buckets: list[int]) -> Sequence[Any]:
        if not buckets:
            return []
        return await conn.fetch(_PENDING, buckets, self.batch_size)

    async def _publish(self, rows: Sequence[Any]) -> None:
        """Hand every row to the producer, then wait for all acknowledgements."""
        futures = []
        for row in rows:
            carrier: dict[str, str] = (
                json.loads(row["trace_context"]) if row["trace_context"] != "{}" else {}
            )
            if sampled(carrier):
                # A sampled trace: its publish is a step of it (and the consumer's parent).
                with tracer.start_as_current_span(
                    f"{row['topic']} publish",
                    context=context_from_mapping(carrier),
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": row["topic"],
                        "messaging.message.type": row["event_type"],
                        "omni.service": self.service,
                    },
                ):
                    headers = mapping_to_headers(inject_context())
            else:
                headers = mapping_to_headers(carrier)
            headers.append((EVENT_TYPE_HEADER, row["event_type"].encode()))
            futures.append(
                await self.producer.send(
                    row["topic"], value=row["envelope"], key=row["key"].encode(), headers=headers
                )
            )
        await asyncio.gather(*futures)
        now = time.time()
        delay = OUTBOX_PUBLISH_DELAY.labels(self.service)
        for row in rows:
            delay.observe(max(0.0, now - row["created"]))
        for topic, count in Counter(row["topic"] for row in rows).items():
            OUTBOX_PUBLISHED.labels(self.service, topic).inc(count)
        OUTBOX_BATCH_EVENTS.labels(self.service).observe(len(rows))

    async def _mark_published(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        await conn.execute(_MARK, ids)

    async def refresh_metrics(self) -> None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8"
                " FROM outbox WHERE published_at IS NULL"
            )
        assert row is not None
        OUTBOX_BACKLOG.labels(self.service).set(row[0])
        OUTBOX_OLDEST_AGE.labels(self.service).set(float(row[1]))

    async def purge_published(self) -> int:
        async with self._connection() as conn:
            status = await conn.execute(
                "DELETE FROM outbox WHERE published_at IS NOT NULL"
                " AND published_at < now() - $1::interval",
                self.retention,
            )
        return int(status.split()[-1])

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
                if published >= self.batch_size:
                    continue  # a backlog: the next batch is already waiting
                await self._sleep(self.poll_interval)
                if self.wakeup.is_set() and not self._stopping.is_set():
                    # Woken by a commit: let the transactions committing alongside it join
                    # the batch (bounded; one relay round per event costs far more).
                    await asyncio.sleep(self.linger)
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
