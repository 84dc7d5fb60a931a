"""Idempotent event consumers: each event's effect and its inbox row commit in one
transaction, offsets are committed after that, and an event that keeps failing is parked in
the service's dead-letter topic with the reason instead of blocking its partition."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError, KafkaError
from google.protobuf.message import DecodeError, Message
from omni.common.v1 import envelope_pb2
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert

from libs.db import is_database_unavailable, is_retryable_conflict
from libs.messaging import MalformedEvent, decode_envelope
from libs.metrics import CONSUMER_DEAD_LETTERS, CONSUMER_EVENTS, CONSUMER_FAILURES, CONSUMER_LAG
from libs.platform_tables import inbox
from libs.telemetry import context_from_mapping, headers_to_mapping
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Handler = Callable[[UnitOfWork, Any, envelope_pb2.EventEnvelope], Awaitable[None]]

# Infrastructure trouble: retry the same event until it works, never dead-letter it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def _transient(error: BaseException) -> bool:
    """Infrastructure trouble or a lost race: retried until it works, never dead-lettered
    (and a retry does not count as an attempt)."""
    return (
        isinstance(error, TRANSIENT_ERRORS)
        or is_database_unavailable(error)
        or is_retryable_conflict(error)
    )


@dataclass(frozen=True)
class Subscription:
    """Which message type an event_type decodes to, and the use case that applies it."""

    message_type: type[Message]
    handle: Handler


class InboxConsumer:
    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        subscriptions: Mapping[type[Message], Handler],
        uow_factory: UnitOfWorkFactory,
        bootstrap: str,
        dead_letter_topic: str,
        dead_letter_producer: AIOKafkaProducer,
        max_attempts: int = 3,
        retry_backoff: float = 0.2,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self.subscriptions = {
            message_type.DESCRIPTOR.full_name: Subscription(message_type, handle)
            for message_type, handle in subscriptions.items()
        }
        self.uow_factory = uow_factory
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_producer = dead_letter_producer
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        self._register_metrics()

    def _register_metrics(self) -> None:
        """Every series this consumer can move exists at 0 from the start (Prometheus
        practice): a rate over a counter that appears only with its first event misses that
        event, and a dashboard or alert would see no data until then."""
        for event_type in self.subscriptions:
            for outcome in ("applied", "duplicate", "dead_lettered"):
                CONSUMER_EVENTS.labels(self.service, self.group_id, event_type, outcome)
            CONSUMER_FAILURES.labels(self.service, self.group_id, event_type)
        CONSUMER_DEAD_LETTERS.labels(self.service, self.group_id)

    async def start(self) -> None:
        for attempt in range(1, 31):
            try:
                await self.consumer.start()
                break
            except KafkaError:
                if attempt == 30:
                    raise
                await asyncio.sleep(min(0.2 * attempt, 2.0))
        self.started.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=200)
            for tp, records in batches.items():
                for record in records:
                    await self._process(record)
                    if self._stopping.is_set():
                        break
                try:
                    last = records[-1].offset if not self._stopping.is_set() else None
                    if last is not None:
                        await self.consumer.commit({tp: last + 1})
                except CommitFailedError:
                    # Rebalanced away; the new owner redelivers and its inbox drops duplicates.
                    log.warning("offset commit failed after rebalance", extra={"tp": str(tp)})
            await self._update_lag()

    async def stop(self) -> None:
        self._stopping.set()
        await self.consumer.stop()

    async def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            CONSUMER_LAG.labels(self.service, self.group_id, tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )

    async def _process(self, record: ConsumerRecord[Any, Any]) -> None:
        headers = headers_to_mapping(record.headers)
        try:
            envelope = decode_envelope(record.value)
        except MalformedEvent as exc:
            await self._dead_letter(record, "malformed", str(exc))
            return
        subscription = self.subscriptions.get(envelope.event_type)
        if subscription is None:
            CONSUMER_EVENTS.labels(
                self.service, self.group_id, envelope.event_type, "ignored"
            ).inc()
            return
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=context_from_mapping(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.message.id": envelope.event_id,
                "messaging.message.type": envelope.event_type,
                "messaging.consumer.group.name": self.group_id,
                "omni.service": self.service,
            },
        ):
            await self._apply_with_retries(record, envelope, subscription)

    async def _apply_with_retries(
        self,
        record: ConsumerRecord[Any, Any],
        envelope: envelope_pb2.EventEnvelope,
        subscription: Subscription,
    ) -> None:
        rejections = 0
        backoff = self.retry_backoff
        while True:
            try:
                outcome = await self._apply(record, envelope, subscription)
                CONSUMER_EVENTS.labels(
                    self.service, self.group_id, envelope.event_type, outcome
                ).inc()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                CONSUMER_FAILURES.labels(self.service, self.group_id, envelope.event_type).inc()
                if _transient(exc):
                    log.warning(
                        "transient failure applying event; retrying",
                        exc_info=True,
                        extra={"event_id": envelope.event_id, "event_type": envelope.event_type},
                    )
                    if self._stopping.is_set():
                        raise
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                rejections += 1
                if rejections >= self.max_attempts:
                    await self._dead_letter(record, "rejected", f"{type(exc).__name__}: {exc}")
                    CONSUMER_EVENTS.labels(
                        self.service, self.group_id, envelope.event_type, "dead_lettered"
                    ).inc()
                    return
                await asyncio.sleep(self.retry_backoff * rejections)

    async def _apply(
        self,
        record: ConsumerRecord[Any, Any],
        envelope: envelope_pb2.EventEnvelope,
        subscription: Subscription,
    ) -> str:
        event = subscription.message_type()
        try:
            event.ParseFromString(envelope.payload)
        except DecodeError as exc:
            raise MalformedEvent(f"payload is not a {envelope.event_type}") from exc
        async with self.uow_factory() as uow:
            claimed = await uow.session.execute(
                insert(inbox)
                .values(
                    consumer_group=self.group_id,
                    event_id=uuid.UUID(envelope.event_id),
                    event_type=envelope.event_type,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
            if claimed.first() is None:
                return "duplicate"
            await subscription.handle(uow, event, envelope)
            await uow.commit()
        return "applied"

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], kind: str, reason: str) -> None:
        log.error(
            "event dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
            },
        )
        headers = list(record.headers or ())
        headers += [
            ("dlq.reason", reason.encode()[:4096]),
            ("dlq.kind", kind.encode()),
            ("dlq.group", self.group_id.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
        ]
        # Until the broker has it, the offset must not move past the poison record.
        while True:
            try:
                await self.dead_letter_producer.send_and_wait(
                    self.dead_letter_topic, value=record.value, key=record.key, headers=headers
                )
                break
            except KafkaError:
                log.warning("dead-letter publish failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
        CONSUMER_DEAD_LETTERS.labels(self.service, self.group_id).inc()
