"""A scratch service world for testing the shared mechanics themselves: its own database
(platform tables plus an effects table that counts applications) and its own topics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from omni.catalog.v1 import catalog_pb2, events_pb2
from omni.common.v1 import envelope_pb2

from libs.config import Settings
from libs.consumer import Delivery, InboxConsumer, Subscriber
from libs.db import Database, drop_database, ensure_database
from libs.messaging import decode_envelope, ensure_topics, make_producer
from libs.outbox_relay import OutboxRelay
from libs.pg import Pg, PgTransaction
from libs.platform_tables import metadata as platform_metadata
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory

EFFECTS = sa.Table(
    "effects",
    sa.MetaData(),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("applied", sa.Integer, nullable=False),
)


class Rejected(Exception):
    """A business rule refusing an event (not a transient failure)."""


async def apply_event(
    uow: UnitOfWork, event: events_pb2.SkuCreatedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    """Counts each application, so applying an event twice is visible."""
    if event.sku.sku_code.startswith("POISON"):
        raise Rejected(f"cannot apply {event.sku.sku_code}")
    await uow.session.execute(
        sa.text(
            "INSERT INTO effects (key, applied) VALUES (:k, 1) "
            "ON CONFLICT (key) DO UPDATE SET applied = effects.applied + 1"
        ),
        {"k": event.sku.sku_code},
    )


async def apply_in_bulk(
    tx: PgTransaction, deliveries: Sequence[Delivery[events_pb2.SkuCreatedEvent]]
) -> None:
    """The bulk form of apply_event: one statement for the run; a poison event refuses the
    whole run (the consumer has to find it)."""
    codes = [d.event.sku.sku_code for d in deliveries]
    poison = [code for code in codes if code.startswith("POISON")]
    if poison:
        raise Rejected(f"cannot apply {poison[0]}")
    await tx.conn.execute(
        "INSERT INTO effects (key, applied) SELECT k, count(*) FROM unnest($1::text[]) AS k"
        " GROUP BY k ON CONFLICT (key) DO UPDATE SET applied = effects.applied + EXCLUDED.applied",
        codes,
    )


@dataclass
class World:
    settings: Settings
    db: Database
    uow: UnitOfWorkFactory
    producer: AIOKafkaProducer
    topic: str
    dlq: str

    def pg(self) -> Pg:
        """Hot-path transactions on this world's database (for Bulk subscribers)."""
        return Pg(self.db.url, producer="order", topic=self.topic)

    def relay(self, relay_type: type[OutboxRelay] = OutboxRelay) -> OutboxRelay:
        return relay_type(self.db, self.producer, "lib-test", batch_size=50)

    def consumer(
        self,
        group: str = "effects",
        subscriber: Subscriber = apply_event,
        *,
        max_batch: int = 500,
        pg: Pg | None = None,
    ) -> InboxConsumer:
        return InboxConsumer(
            service="lib-test",
            group_id=self.settings.consumer_group(group),
            topics=[self.topic],
            subscriptions={events_pb2.SkuCreatedEvent: subscriber},
            uow_factory=self.uow,
            pg=pg,
            bootstrap=self.settings.require_kafka(),
            dead_letter_topic=self.dlq,
            dead_letter_producer=self.producer,
            retry_backoff=0.01,
            max_batch=max_batch,
        )

    async def emit(self, keys: list[str]) -> None:
        """Commit one event per key through the outbox (one transaction per 100)."""
        for start in range(0, len(keys), 100):
            async with self.uow() as uow:
                for key in keys[start : start + 100]:
                    uow.emit(
                        events_pb2.SkuCreatedEvent(sku=catalog_pb2.Sku(sku_code=key)),
                        aggregate_id=key.split("#")[0],
                    )
                await uow.commit()

    async def drain_relay(self, relay: OutboxRelay) -> int:
        total = 0
        while published := await relay.run_once():
            total += published
        return total

    async def effects(self) -> dict[str, int]:
        async with self.db.session() as session:
            rows = (await session.execute(sa.select(EFFECTS))).all()
        return {row.key: row.applied for row in rows}

    async def unpublished(self) -> int:
        async with self.db.session() as session:
            return int(
                (
                    await session.execute(
                        sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    )
                ).scalar_one()
            )

    async def read_topic(self, topic: str, expected: int, timeout: float = 20) -> list[object]:
        """Every record on ``topic`` from the beginning (stops at ``expected`` or timeout)."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.settings.require_kafka(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[object] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(records) < expected and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                for partition_records in batch.values():
                    records.extend(partition_records)
        finally:
            await consumer.stop()
        return records


def event_ids(records: list[object]) -> list[str]:
    return [decode_envelope(r.value).event_id for r in records]  # type: ignore[attr-defined]


@pytest.fixture
async def world(test_stack, unique) -> AsyncIterator[World]:
    settings = test_stack.settings("order").with_overrides(
        database_prefix=f"omni_t{test_stack.run_id}_lib{unique.lower()}_",
        topic_prefix=f"t{test_stack.run_id}.lib{unique.lower()}.",
    )
    url = settings.database_url()
    await ensure_database(url)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(platform_metadata.create_all)
        await conn.run_sync(EFFECTS.metadata.create_all)
    topic, dlq = settings.topic("order"), settings.dead_letter_topic()
    await ensure_topics(settings.require_kafka(), [topic, dlq])
    producer = make_producer(settings.require_kafka())
    await producer.start()
    try:
        yield World(settings, db, UnitOfWorkFactory(db, "order", topic), producer, topic, dlq)
    finally:
        await producer.stop()
        await db.dispose()
        with contextlib.suppress(Exception):
            await drop_database(url)
