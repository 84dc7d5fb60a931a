"""The outbox relay and the inbox consumer against the real database and broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import asyncpg
from aiokafka import AIOKafkaProducer
from omni.catalog.v1 import catalog_pb2, events_pb2
from omni.common.v1 import envelope_pb2

from libs.outbox_relay import OutboxRelay
from libs.testing.services import eventually
from libs.unit_of_work import UnitOfWork
from tests.integration.platform.conftest import World, apply_event, event_ids


class RelayKilledBeforeMarking(OutboxRelay):
    """Dies after the broker acknowledged the batch, before the rows are marked published."""

    published: int = 0

    async def _mark_published(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        self.published = len(ids)
        raise SystemError("relay killed between publish and mark")


async def wait_for_effects(world: World, expected: int, timeout: float = 30) -> dict[str, int]:
    async def all_applied() -> dict[str, int]:
        effects = await world.effects()
        assert len(effects) >= expected, f"{len(effects)} of {expected} applied"
        return effects

    return await eventually(all_applied, timeout=timeout, interval=0.1)


async def test_a_consumer_killed_mid_stream_and_restarted_loses_nothing_and_applies_nothing_twice(
    world: World,
):
    keys = [f"K{i:04d}" for i in range(300)]
    await world.emit(keys)
    assert await world.drain_relay(world.relay()) == 300

    # The consumer hangs inside a batch once it has applied a few: the kill always lands
    # mid-batch, however fast the batches before it were.
    calls = 0
    hang = asyncio.Event()

    async def hangs_after_60(
        uow: UnitOfWork, event: events_pb2.SkuCreatedEvent, envelope: envelope_pb2.EventEnvelope
    ) -> None:
        nonlocal calls
        calls += 1
        if calls > 60:
            await hang.wait()
        await apply_event(uow, event, envelope)

    first = world.consumer(subscriber=hangs_after_60, max_batch=20)
    await first.start()
    run = asyncio.create_task(first.run())
    await eventually(lambda: _at_least(world, 30), timeout=30)
    # Killed, not stopped: the batch in flight is neither finished nor its offsets committed.
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    await first.consumer.stop()
    assert len(await world.effects()) < 300

    second = world.consumer()
    await second.start()
    run = asyncio.create_task(second.run())
    try:
        effects = await wait_for_effects(world, 300)
    finally:
        await second.stop()
        run.cancel()
    assert sorted(effects) == keys
    assert set(effects.values()) == {1}


async def _at_least(world: World, count: int) -> None:
    assert len(await world.effects()) >= count


async def test_a_relay_killed_after_publishing_republishes_and_the_inbox_ignores_the_copy(
    world: World,
):
    keys = [f"R{i:03d}" for i in range(20)]
    await world.emit(keys)
    doomed = world.relay(RelayKilledBeforeMarking)
    assert isinstance(doomed, RelayKilledBeforeMarking)
    with contextlib.suppress(SystemError):
        await doomed.run_once()
    assert doomed.published > 0
    assert await world.unpublished() == 20  # nothing was marked
    assert await world.drain_relay(world.relay()) == 20
    assert await world.unpublished() == 0

    records = await world.read_topic(world.topic, expected=20 + doomed.published)
    ids = event_ids(records)
    # What the killed relay sent is delivered twice, the rest once.
    assert len(ids) == 20 + doomed.published and len(set(ids)) == 20

    consumer = world.consumer()
    await consumer.start()
    run = asyncio.create_task(consumer.run())
    try:
        effects = await wait_for_effects(world, 20)
        # Give the copies time to arrive too; they must change nothing.
        await eventually(lambda: _consumed_all(consumer, world.topic), timeout=20)
    finally:
        await consumer.stop()
        run.cancel()
    assert set(effects.values()) == {1}
    assert await world.effects() == effects


async def _consumed_all(consumer, topic: str) -> None:
    assignment = [tp for tp in consumer.consumer.assignment() if tp.topic == topic]
    assert assignment
    for tp in assignment:
        assert await consumer.consumer.position(tp) >= (consumer.consumer.highwater(tp) or 0)


async def test_poison_messages_go_to_the_dead_letter_topic_and_later_messages_still_flow(
    world: World,
):
    # All on one key, so they share a partition: a blocked partition would starve "after".
    raw = AIOKafkaProducer(bootstrap_servers=world.settings.require_kafka())
    await raw.start()
    try:
        await raw.send_and_wait(world.topic, b"\x00not an envelope", key=b"same")
        bad_payload = envelope_pb2.EventEnvelope(
            event_id="00000000-0000-4000-8000-000000000001",
            event_type="omni.catalog.v1.SkuCreatedEvent",
            payload=b"\xff\xff\xff",
        )
        await raw.send_and_wait(world.topic, bad_payload.SerializeToString(), key=b"same")
    finally:
        await raw.stop()
    async with world.uow() as uow:
        uow.emit(
            events_pb2.SkuCreatedEvent(sku=catalog_pb2.Sku(sku_code="POISON-1")),
            aggregate_id="same",
        )
        for i in range(5):
            uow.emit(
                events_pb2.SkuCreatedEvent(sku=catalog_pb2.Sku(sku_code=f"AFTER-{i}")),
                aggregate_id="same",
            )
        await uow.commit()
    await world.drain_relay(world.relay())

    consumer = world.consumer()
    await consumer.start()
    run = asyncio.create_task(consumer.run())
    try:
        effects = await wait_for_effects(world, 5)
    finally:
        await consumer.stop()
        run.cancel()
    assert effects == {f"AFTER-{i}": 1 for i in range(5)}

    parked = await world.read_topic(world.dlq, expected=3)
    reasons = sorted(dict(r.headers)["dlq.kind"].decode() for r in parked)  # type: ignore[attr-defined]
    assert reasons == ["malformed", "rejected", "rejected"]
    details = [dict(r.headers)["dlq.reason"].decode() for r in parked]  # type: ignore[attr-defined]
    assert any("cannot apply POISON-1" in d for d in details)
    assert all(dict(r.headers)["dlq.topic"].decode() == world.topic for r in parked)  # type: ignore[attr-defined]


async def test_two_relays_publish_each_row_once_and_keep_each_keys_order(world: World):
    # 40 aggregates x 15 events each, interleaved.
    keys = [f"A{agg:02d}#{seq:02d}" for seq in range(15) for agg in range(40)]
    await world.emit(keys)
    one, two = world.relay(), world.relay()
    published = await asyncio.gather(world.drain_relay(one), world.drain_relay(two))
    assert sum(published) == 600
    # They shared the backlog: each claims half the buckets while the other holds the rest.
    assert all(count > 0 for count in published), published
    assert await world.unpublished() == 0

    records = await world.read_topic(world.topic, expected=600)
    ids = event_ids(records)
    assert len(ids) == 600 and len(set(ids)) == 600

    sequences: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):  # type: ignore[attr-defined]
        event = events_pb2.SkuCreatedEvent()
        event.ParseFromString(record.value and _payload(record.value))  # type: ignore[attr-defined]
        aggregate, seq = event.sku.sku_code.split("#")
        sequences[aggregate].append(int(seq))
    assert len(sequences) == 40
    assert all(seqs == list(range(15)) for seqs in sequences.values())


def _payload(value: bytes) -> bytes:
    envelope = envelope_pb2.EventEnvelope()
    envelope.ParseFromString(value)
    return envelope.payload


async def test_a_stopping_relay_publishes_what_was_committed_before_it_returns(world: World):
    relay = world.relay()
    await world.emit([f"S{i}" for i in range(7)])
    await relay.stop()  # asked to stop before its loop ever ran
    await asyncio.wait_for(relay.run_forever(), timeout=20)
    assert await world.unpublished() == 0
    assert len(await world.read_topic(world.topic, expected=7)) == 7
