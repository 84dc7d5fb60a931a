"""The consumer applies what one fetch returns as one transaction: a poison event in a
batch is isolated and parked with its reason while the others are applied once; a consumer
killed mid-batch (SIGKILL) leaves nothing of that batch, and its successor applies every
event once; events a consumer does not subscribe to are dropped from their header."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from aiokafka import AIOKafkaProducer
from omni.catalog.v1 import catalog_pb2, events_pb2
from prometheus_client import REGISTRY

from libs.consumer import Bulk, InboxConsumer
from libs.messaging import EVENT_TYPE_HEADER
from libs.testing.plugin import REPO
from libs.testing.services import eventually
from tests.integration.platform.conftest import World, apply_in_bulk


async def _run_until(world: World, consumer: InboxConsumer, expected: int) -> dict[str, int]:
    await consumer.start()
    run = asyncio.create_task(consumer.run())
    try:

        async def applied() -> dict[str, int]:
            effects = await world.effects()
            assert len(effects) >= expected, f"{len(effects)} of {expected} applied"
            return effects

        return await eventually(applied, timeout=30, interval=0.1)
    finally:
        await consumer.stop()
        run.cancel()


async def test_a_poison_event_in_a_bulk_batch_is_parked_and_the_others_are_applied_once(
    world: World,
):
    keys = [f"B{i:03d}" for i in range(60)]
    keys.insert(37, "POISON-37")
    # One transaction and one relay batch: the consumer fetches them together.
    await world.emit(keys)
    assert await world.drain_relay(world.relay()) == 61
    pg = world.pg()
    try:
        consumer = world.consumer(subscriber=Bulk(apply_in_bulk), pg=pg)
        effects = await _run_until(world, consumer, 60)
    finally:
        await pg.close()
    assert effects == {key: 1 for key in keys if key != "POISON-37"}

    parked = await world.read_topic(world.dlq, expected=1)
    assert len(parked) == 1
    headers = dict(parked[0].headers)  # type: ignore[attr-defined]
    assert headers["dlq.kind"] == b"rejected"
    assert b"Rejected: cannot apply POISON-37" in headers["dlq.reason"]
    assert headers["dlq.topic"].decode() == world.topic


async def test_a_consumer_killed_mid_batch_leaves_nothing_of_it_and_its_successor_applies_each_once(
    world: World, tmp_path: Path
):
    keys = [f"K{i:03d}" for i in range(300)]
    await world.emit(keys)
    assert await world.drain_relay(world.relay()) == 300
    group = world.settings.consumer_group("killed")
    marker = tmp_path / "hanging"
    victim = subprocess.Popen(  # noqa: ASYNC220 - the process under test, started once
        [
            sys.executable,
            "-m",
            "tests.integration.platform.killable_consumer",
            world.db.url.render_as_string(hide_password=False),
            world.settings.require_kafka(),
            world.topic,
            world.dlq,
            group,
            "50",
            str(marker),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"},
    )
    try:

        async def hanging_mid_batch() -> None:
            assert marker.exists()

        await eventually(hanging_mid_batch, timeout=60, interval=0.1)
        os.kill(victim.pid, signal.SIGKILL)
        assert await asyncio.to_thread(victim.wait, 10) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    committed = await world.effects()
    # What it committed before the kill stands; the batch it hung in left nothing.
    assert len(committed) == int(marker.read_text()) < 300
    assert set(committed.values()) == {1}

    pg = world.pg()
    try:
        successor = world.consumer("killed", subscriber=Bulk(apply_in_bulk), pg=pg)
        effects = await _run_until(world, successor, 300)
    finally:
        await pg.close()
    assert sorted(effects) == keys
    assert set(effects.values()) == {1}


async def test_events_of_types_not_subscribed_are_dropped_from_their_header_undecoded(
    world: World,
):
    # The value is not even an envelope: decoding it would dead-letter it as malformed.
    raw = AIOKafkaProducer(bootstrap_servers=world.settings.require_kafka())
    await raw.start()
    try:
        for _ in range(3):
            await raw.send_and_wait(
                world.topic,
                b"\x00not an envelope",
                key=b"same",
                headers=[(EVENT_TYPE_HEADER, b"omni.catalog.v1.PriceChangedEvent")],
            )
    finally:
        await raw.stop()
    async with world.uow() as uow:
        uow.emit(events_pb2.SkuCreatedEvent(sku=catalog_pb2.Sku(sku_code="AFTER")), "same")
        await uow.commit()
    await world.drain_relay(world.relay())
    consumer = world.consumer("header")

    def ignored() -> float:
        return (
            REGISTRY.get_sample_value(
                "omni_consumer_events_total",
                {
                    "service": "lib-test",
                    "group": consumer.group_id,
                    "event_type": "omni.catalog.v1.PriceChangedEvent",
                    "outcome": "ignored",
                },
            )
            or 0.0
        )

    assert await _run_until(world, consumer, 1) == {"AFTER": 1}
    assert ignored() == 3
    assert await world.read_topic(world.dlq, expected=1, timeout=3) == []
