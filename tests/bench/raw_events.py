"""Events straight onto a topic, as the producing service's relay would publish them (same
envelope, key and headers), for benchmarks that measure a consumer alone: a backlog builds
up faster than any consumer drains it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from libs.messaging import EVENT_TYPE_HEADER
from libs.unit_of_work import PendingEvent, outbox_row


async def publish(
    bootstrap: str, producer_service: str, topic: str, events: Sequence[tuple[Message, str]]
) -> None:
    """(event, aggregate id) pairs, in order (per key order is what the topic keeps)."""
    kafka = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await kafka.start()
    try:
        for start in range(0, len(events), 5000):
            futures = []
            for message, aggregate_id in events[start : start + 5000]:
                row = outbox_row(
                    producer_service, topic, PendingEvent(uuid.uuid4(), aggregate_id, message)
                )
                futures.append(
                    await kafka.send(
                        topic,
                        value=row["envelope"],
                        key=str(row["key"]).encode(),
                        headers=[(EVENT_TYPE_HEADER, str(row["event_type"]).encode())],
                    )
                )
            await asyncio.gather(*futures)
    finally:
        await kafka.stop()
