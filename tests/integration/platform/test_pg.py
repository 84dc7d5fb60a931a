"""Hot-path transactions on plain asyncpg (libs/pg.py): state and events commit together,
a transaction left without commit leaves nothing, and the relay publishes what it wrote."""

from __future__ import annotations

import asyncio

from omni.catalog.v1 import catalog_pb2, events_pb2

from libs.messaging import decode_envelope
from libs.pg import Pg
from tests.integration.platform.conftest import World


async def test_events_written_by_a_pg_transaction_reach_the_topic_after_commit(world: World):
    wakeup = asyncio.Event()
    pg = Pg(world.db.url, producer="order", topic=world.topic, relay_wakeup=wakeup)
    try:
        async with pg.transaction() as tx:
            await tx.conn.execute("INSERT INTO effects (key, applied) VALUES ('PG1', 1)")
            for code in ("A", "B", "C"):
                tx.emit(events_pb2.SkuCreatedEvent(sku=catalog_pb2.Sku(sku_code=code)), code)
            counted: list[bool] = []
            tx.after_commit(lambda: counted.append(True))
            await tx.commit()
        assert wakeup.is_set() and counted == [True]
        assert await world.effects() == {"PG1": 1}
        assert await world.drain_relay(world.relay()) == 3
        records = await world.read_topic(world.topic, 3)
        envelopes = [decode_envelope(r.value) for r in records]  # type: ignore[attr-defined]
        assert sorted(e.aggregate_id for e in envelopes) == ["A", "B", "C"]
        assert {e.producer for e in envelopes} == {"order"}
    finally:
        await pg.close()


async def test_a_pg_transaction_without_commit_writes_neither_state_nor_events(world: World):
    pg = Pg(world.db.url, producer="order", topic=world.topic)
    try:
        async with pg.transaction() as tx:
            await tx.conn.execute("INSERT INTO effects (key, applied) VALUES ('PG2', 1)")
            tx.emit(events_pb2.SkuCreatedEvent(sku=catalog_pb2.Sku(sku_code="X")), "X")
        assert await world.effects() == {}
        assert await world.unpublished() == 0
        async with pg.connection() as conn:
            assert await conn.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}
    finally:
        await pg.close()
