"""Inventory's events leave through the outbox and reach the broker, decodable by anyone."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer
from omni.inventory.v1 import events_pb2

from libs.messaging import decode_envelope
from libs.testing.services import eventually


async def test_stock_changed_reaches_the_broker_with_the_new_atp(inventory, test_stack, unique):
    sku = await inventory.track(f"EVT-{unique}")
    store = (
        await inventory.location(f"EVT-{unique}", channels=("mall", "pos"), safety=1)
    ).location_id
    await inventory.receive(store, sku, 6, f"{unique}-in")

    consumer = AIOKafkaConsumer(
        test_stack.settings("inventory").topic("inventory"),
        bootstrap_servers=test_stack.kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[events_pb2.StockChangedEvent] = []
    try:

        async def arrived() -> events_pb2.StockChangedEvent:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = decode_envelope(record.value)
                    if envelope.event_type != "omni.inventory.v1.StockChangedEvent":
                        continue
                    event = events_pb2.StockChangedEvent()
                    event.ParseFromString(envelope.payload)
                    if event.stock_level.sku_code == sku:
                        assert record.key == sku.encode()
                        seen.append(event)
            assert seen
            return seen[0]

        event = await eventually(arrived, timeout=20)
    finally:
        await consumer.stop()
    assert event.cause == "receipt"
    assert (event.stock_level.on_hand, event.stock_level.available) == (6, 5)
    assert list(event.channels) == ["mall", "pos"]
