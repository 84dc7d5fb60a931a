"""Kafka plumbing: producers, topics, and the event envelope."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from google.protobuf.message import DecodeError
from omni.common.v1 import envelope_pb2

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6

# Every record the relay publishes names its event type in this header, so a consumer can
# drop what it does not subscribe to without decoding the envelope.
EVENT_TYPE_HEADER = "event_type"


class MalformedEvent(ValueError):
    """A record whose value is not a well-formed EventEnvelope."""


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    # acks=all and our own outbox/inbox give at-least-once delivery with exactly-once effects;
    # nothing relies on Kafka's idempotent producer or transactions.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        request_timeout_ms=15000,
    )


async def start_with_retry(client: AIOKafkaProducer, attempts: int = 30) -> None:
    """Start a Kafka client, waiting for a broker that is still coming up."""
    for attempt in range(1, attempts + 1):
        try:
            await client.start()
            return
        except KafkaConnectionError:
            if attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * attempt, 2.0))


async def ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the topics that do not exist yet (idempotent; safe from several processes)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    for attempt in range(1, 31):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == 30:
                raise
            await asyncio.sleep(min(0.2 * attempt, 2.0))
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            log.info("created topics", extra={"topics": missing})
    finally:
        await admin.close()


def sampled(carrier: Mapping[str, str]) -> bool:
    """Whether a W3C trace context (as stored with an outbox row or carried in record
    headers) belongs to a sampled trace: only then is a span made for the event, so an
    untraced event costs none. The sampled flag is bit 0 of the trace flags."""
    parts = carrier.get("traceparent", "").split("-")
    if len(parts) != 4:
        return False
    try:
        return bool(int(parts[3], 16) & 1)
    except ValueError:
        return False


def decode_envelope(value: bytes | None) -> envelope_pb2.EventEnvelope:
    if not value:
        raise MalformedEvent("empty record value")
    envelope = envelope_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(value)
    except DecodeError as exc:
        raise MalformedEvent(f"not an EventEnvelope: {exc}") from exc
    if not envelope.event_id or not envelope.event_type:
        raise MalformedEvent("envelope without event_id or event_type")
    try:
        uuid.UUID(envelope.event_id)
    except ValueError as exc:
        raise MalformedEvent(f"event_id {envelope.event_id[:64]!r} is not a UUID") from exc
    return envelope
