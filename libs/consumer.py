"""Idempotent event consumers, applied in batches.

A consumer takes what one ``getmany`` returns (up to ``max_batch`` records over its
partitions), drops what it does not subscribe to from the record's ``event_type`` header
alone (no decoding, no span, no log), and applies the rest in one database transaction: the
inbox rows of the whole batch (one multi-row INSERT … ON CONFLICT DO NOTHING) and the
effects commit together, and the offsets are committed after that. Delivery is
at-least-once; effects are exactly-once.

Three kinds of subscriber:

- a per-event ``Handler`` ``(uow, event, envelope)`` — called once per new event, all of a
  batch inside one UnitOfWork (SQLAlchemy session);
- ``Bulk(apply)`` — ``apply(tx, deliveries)`` gets each run of consecutive events of its
  type at once, on the hot-path transaction (asyncpg, libs/pg.py), for multi-row statements;
- ``BulkInSession(apply)`` — the same inside a UnitOfWork, for use cases written against a
  session that still gain from seeing the run (deduplicate, one statement for many).

A batch mixing subscribers that need a session and subscribers on asyncpg is applied as
consecutive runs, one transaction each, in record order (one key's events stay in order).

A failure that is the event's fault (a rule refused it, a bug) splits the batch in halves
until the failing event stands alone; the others are applied once, and the lone one is
tried ``max_attempts`` times, then parked in the service's dead-letter topic with the
reason. Infrastructure trouble (database down, a deadlock) retries the same batch until it
works and is never dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError, Message
from omni.common.v1 import envelope_pb2
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy import exc as sa_exc

from libs.db import is_database_unavailable, is_retryable_conflict
from libs.messaging import EVENT_TYPE_HEADER, MalformedEvent, decode_envelope, sampled
from libs.metrics import (
    CONSUMER_BATCH_EVENTS,
    CONSUMER_DEAD_LETTERS,
    CONSUMER_EVENT_DELAY,
    CONSUMER_EVENTS,
    CONSUMER_FAILURES,
    CONSUMER_LAG,
)
from libs.pg import Pg, PgTransaction
from libs.telemetry import context_from_mapping
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

E = TypeVar("E", bound=Message)

Handler = Callable[[UnitOfWork, Any, envelope_pb2.EventEnvelope], Awaitable[None]]


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """One new event handed to a bulk subscriber."""

    event: E
    envelope: envelope_pb2.EventEnvelope
    # The event's W3C trace context: work that outlives the batch (a queued push) keeps it.
    trace_context: Mapping[str, str]


@dataclass(frozen=True)
class Bulk:
    """Applies a run of events of one type on the batch's asyncpg transaction."""

    apply: Callable[[PgTransaction, Sequence[Delivery[Any]]], Awaitable[None]]


@dataclass(frozen=True)
class BulkInSession:
    """Applies a run of events of one type inside the batch's UnitOfWork."""

    apply: Callable[[UnitOfWork, Sequence[Delivery[Any]]], Awaitable[None]]


Subscriber = Handler | Bulk | BulkInSession

# Infrastructure trouble: retry the same batch until it works, never dead-letter it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)

_TRACE_HEADERS = ("traceparent", "tracestate")
FETCH_MAX_WAIT_MS = 50


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
    """Which message type an event_type decodes to, and the subscriber that applies it."""

    message_type: type[Message]
    subscriber: Subscriber

    @property
    def on_pg(self) -> bool:
        return isinstance(self.subscriber, Bulk)


@dataclass
class _Item:
    record: ConsumerRecord[Any, Any]
    envelope: envelope_pb2.EventEnvelope
    event: Message
    subscription: Subscription
    trace_context: dict[str, str]
    span: Span | None = field(default=None)

    def delivery(self) -> Delivery[Any]:
        if self.span is None:
            return Delivery(self.event, self.envelope, self.trace_context)
        # Work the event causes (a queued push) continues from this consumer's span.
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.span))
        return Delivery(self.event, self.envelope, carrier)


class _Refused(Exception):
    """A batch failed for a reason that retrying the same batch will not fix."""


class InboxConsumer:
    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        subscriptions: Mapping[type[Message], Subscriber],
        uow_factory: UnitOfWorkFactory,
        bootstrap: str,
        dead_letter_topic: str,
        dead_letter_producer: AIOKafkaProducer,
        pg: Pg | None = None,
        max_attempts: int = 3,
        retry_backoff: float = 0.2,
        max_batch: int = 500,
        linger: float = 0.01,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self.subscriptions = {
            message_type.DESCRIPTOR.full_name: Subscription(message_type, subscriber)
            for message_type, subscriber in subscriptions.items()
        }
        if pg is None and any(s.on_pg for s in self.subscriptions.values()):
            raise ValueError("Bulk subscribers need the service's Pg (hot-path transactions)")
        self.uow_factory = uow_factory
        self.pg = pg
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_producer = dead_letter_producer
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.max_batch = max_batch
        self.linger = linger
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A fetch the broker has nothing for returns after this long at most (Kafka's
            # default is 500 ms): an event waits for the next fetch no longer than this.
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
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
            CONSUMER_EVENT_DELAY.labels(self.service, self.group_id, event_type)
        CONSUMER_DEAD_LETTERS.labels(self.service, self.group_id)
        CONSUMER_BATCH_EVENTS.labels(self.service, self.group_id)

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
        loop = asyncio.get_running_loop()
        next_lag = 0.0
        while not self._stopping.is_set():
            fetched = await self._fetch()
            records = [record for partition in fetched.values() for record in partition]
            if records:
                await self._handle(records)
                # Stopping mid-batch: the offsets stay where they were; whatever committed
                # is recognised by the inbox when the next owner reads it again.
                if self._stopping.is_set():
                    break
                await self._commit_offsets(
                    {tp: partition[-1].offset + 1 for tp, partition in fetched.items()}
                )
            # After every batch (local figures, no round trip), and every second when idle.
            if records or loop.time() >= next_lag:
                await self._update_lag()
                next_lag = loop.time() + 1.0

    async def _fetch(self) -> dict[Any, list[ConsumerRecord[Any, Any]]]:
        """What the broker has for us, up to ``max_batch`` records; when the first fetch
        brings fewer, more are gathered for up to ``linger`` seconds, so the cost of a batch
        (its transaction, its fan-out) is shared by what arrived meanwhile."""
        fetched = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
        count = sum(len(records) for records in fetched.values())
        if not count or self.linger <= 0:
            return fetched
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while count < self.max_batch and (left := deadline - loop.time()) > 0:
            more = await self.consumer.getmany(
                timeout_ms=max(1, int(left * 1000)), max_records=self.max_batch - count
            )
            if not more:
                break
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)
        return fetched

    async def stop(self) -> None:
        self._stopping.set()
        await self.consumer.stop()

    async def _commit_offsets(self, offsets: dict[Any, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except KafkaError:
            # Rebalanced away (or the broker went): the next owner redelivers from the last
            # committed offset and its inbox drops what was applied here.
            log.warning("offset commit failed", exc_info=True)

    async def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            CONSUMER_LAG.labels(self.service, self.group_id, tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )

    # --- one batch -----------------------------------------------------------------------

    async def _handle(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        ignored: Counter[str] = Counter()
        items: list[_Item] = []
        for record in records:
            item = await self._prepare(record, ignored)
            if item is not None:
                items.append(item)
        for event_type, count in ignored.items():
            CONSUMER_EVENTS.labels(self.service, self.group_id, event_type, "ignored").inc(count)
        if not items:
            return
        CONSUMER_BATCH_EVENTS.labels(self.service, self.group_id).observe(len(items))
        for run in _runs(items, lambda item: item.subscription.on_pg):
            await self._apply_isolating(run)

    async def _prepare(
        self, record: ConsumerRecord[Any, Any], ignored: Counter[str]
    ) -> _Item | None:
        """Decode what this consumer subscribes to; park what cannot be decoded."""
        headers = record.headers or ()
        declared = next((v for k, v in headers if k == EVENT_TYPE_HEADER), None)
        if declared is not None:
            event_type = declared.decode("utf-8", "replace")
            if event_type not in self.subscriptions:
                ignored[event_type] += 1
                return None
        try:
            envelope = decode_envelope(record.value)
        except MalformedEvent as exc:
            await self._dead_letter(record, "malformed", str(exc))
            return None
        subscription = self.subscriptions.get(envelope.event_type)
        if subscription is None:
            ignored[envelope.event_type] += 1
            return None
        event = subscription.message_type()
        try:
            event.ParseFromString(envelope.payload)
        except DecodeError:
            # The envelope is sound but its payload is not what it says: no retry can help.
            await self._dead_letter(record, "rejected", f"payload is not a {envelope.event_type}")
            self._count(envelope.event_type, "dead_lettered")
            return None
        context = {k: v.decode("utf-8", "replace") for k, v in headers if k in _TRACE_HEADERS}
        return _Item(record, envelope, event, subscription, context)

    async def _apply_isolating(self, items: list[_Item]) -> None:
        """Apply ``items`` in one transaction; if that is refused, split to find the one
        event at fault, apply the others once and dead-letter it with the reason."""
        rejections = 0
        while True:
            try:
                outcomes = await self._apply_until_not_transient(items)
            except _Refused as refused:
                if len(items) > 1:
                    middle = len(items) // 2
                    await self._apply_isolating(items[:middle])
                    await self._apply_isolating(items[middle:])
                    return
                rejections += 1
                if rejections < self.max_attempts:
                    await asyncio.sleep(self.retry_backoff * rejections)
                    continue
                cause = refused.__cause__ or refused
                item = items[0]
                await self._dead_letter(item.record, "rejected", f"{type(cause).__name__}: {cause}")
                self._count(item.envelope.event_type, "dead_lettered")
                return
            now = time.time()
            for item, outcome in zip(items, outcomes, strict=True):
                self._count(item.envelope.event_type, outcome)
                if outcome == "applied":
                    occurred = item.envelope.occurred_at
                    if occurred.seconds:
                        CONSUMER_EVENT_DELAY.labels(
                            self.service, self.group_id, item.envelope.event_type
                        ).observe(max(0.0, now - occurred.seconds - occurred.nanos / 1e9))
            return

    async def _apply_until_not_transient(self, items: list[_Item]) -> list[str]:
        backoff = self.retry_backoff
        while True:
            try:
                return await self._apply_batch(items)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                for event_type in {item.envelope.event_type for item in items}:
                    CONSUMER_FAILURES.labels(self.service, self.group_id, event_type).inc()
                if not _transient(exc):
                    raise _Refused() from exc
                log.warning(
                    "transient failure applying a batch; retrying",
                    exc_info=True,
                    extra={"events": len(items), "group": self.group_id},
                )
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _apply_batch(self, items: list[_Item]) -> list[str]:
        """One transaction: claim the inbox rows, apply the new events, commit. Returns
        each item's outcome (applied, or duplicate when its event id was claimed before)."""
        spans = [self._start_span(item) for item in items]
        try:
            if items[0].subscription.on_pg:
                fresh = await self._apply_on_pg(items)
            else:
                fresh = await self._apply_in_session(items)
        except BaseException as exc:
            for span in spans:
                if span is not None:
                    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}")
                    span.end()
            raise
        for span in spans:
            if span is not None:
                span.end()
        return ["applied" if new else "duplicate" for new in fresh]

    async def _apply_on_pg(self, items: list[_Item]) -> list[bool]:
        assert self.pg is not None
        async with self.pg.transaction() as tx:
            fresh = _first_claims(items, await _claim_on_pg(tx, self.group_id, items))
            new = [item for item, claimed in zip(items, fresh, strict=True) if claimed]
            for run in _runs(new, lambda item: item.subscription.message_type):
                subscriber = run[0].subscription.subscriber
                assert isinstance(subscriber, Bulk)
                await subscriber.apply(tx, [item.delivery() for item in run])
            await tx.commit()
        return fresh

    async def _apply_in_session(self, items: list[_Item]) -> list[bool]:
        async with self.uow_factory() as uow:
            fresh = _first_claims(items, await _claim_in_session(uow, self.group_id, items))
            new = [item for item, claimed in zip(items, fresh, strict=True) if claimed]
            for run in _runs(new, lambda item: item.subscription.message_type):
                subscriber = run[0].subscription.subscriber
                if isinstance(subscriber, BulkInSession):
                    await subscriber.apply(uow, [item.delivery() for item in run])
                    continue
                assert not isinstance(subscriber, Bulk)
                for item in run:
                    # The event's span is current while its handler runs, so the events
                    # the handler emits continue the event's trace.
                    with (
                        trace.use_span(item.span, end_on_exit=False)
                        if item.span is not None
                        else contextlib.nullcontext()
                    ):
                        await subscriber(uow, item.event, item.envelope)
            await uow.commit()
        return fresh

    def _start_span(self, item: _Item) -> Span | None:
        """A CONSUMER span per event whose producer's trace is sampled; none otherwise (an
        untraced event costs no span)."""
        if not sampled(item.trace_context):
            return None
        item.span = tracer.start_span(
            f"{item.record.topic} process",
            context=context_from_mapping(item.trace_context),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": item.record.topic,
                "messaging.message.id": item.envelope.event_id,
                "messaging.message.type": item.envelope.event_type,
                "messaging.consumer.group.name": self.group_id,
                "omni.service": self.service,
            },
        )
        return item.span

    def _count(self, event_type: str, outcome: str) -> None:
        CONSUMER_EVENTS.labels(self.service, self.group_id, event_type, outcome).inc()

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


T = TypeVar("T")


def _runs(items: Sequence[T], key: Callable[[T], object]) -> Iterator[list[T]]:
    """Consecutive items with the same key, in order."""
    run: list[T] = []
    for item in items:
        if run and key(run[-1]) != key(item):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def _first_claims(items: Sequence[_Item], claimed: set[str]) -> list[bool]:
    """Which items are new: claimed now, and the first of their event id in the batch."""
    fresh = []
    for item in items:
        event_id = item.envelope.event_id
        fresh.append(event_id in claimed)
        claimed.discard(event_id)
    return fresh


def _inbox_columns(items: Sequence[_Item]) -> dict[str, list[Any]]:
    seen: dict[str, _Item] = {}
    for item in items:
        seen.setdefault(item.envelope.event_id, item)
    unique = list(seen.values())
    return {
        "event_id": [uuid.UUID(i.envelope.event_id) for i in unique],
        "event_type": [i.envelope.event_type for i in unique],
        "topic": [i.record.topic for i in unique],
        "partition": [i.record.partition for i in unique],
        "offset": [i.record.offset for i in unique],
    }


_CLAIM_ON_PG = """
INSERT INTO inbox (consumer_group, event_id, event_type, topic, partition, "offset")
SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::bigint[])
ON CONFLICT DO NOTHING
RETURNING event_id
"""


async def _claim_on_pg(tx: PgTransaction, group_id: str, items: Sequence[_Item]) -> set[str]:
    """The event ids of ``items`` not seen by this group before (one statement)."""
    columns = _inbox_columns(items)
    rows = await tx.conn.fetch(
        _CLAIM_ON_PG,
        group_id,
        columns["event_id"],
        columns["event_type"],
        columns["topic"],
        columns["partition"],
        columns["offset"],
    )
    return {str(row[0]) for row in rows}


# The same statement for any batch size (a multi-row VALUES would be compiled anew for each).
_CLAIM_IN_SESSION = sa.text(
    'INSERT INTO inbox (consumer_group, event_id, event_type, topic, partition, "offset")'
    " SELECT :group_id, * FROM unnest(CAST(:event_id AS uuid[]), CAST(:event_type AS text[]),"
    " CAST(:topic AS text[]), CAST(:partition AS int[]), CAST(:offset AS bigint[]))"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)


async def _claim_in_session(uow: UnitOfWork, group_id: str, items: Sequence[_Item]) -> set[str]:
    claimed = await uow.session.execute(
        _CLAIM_IN_SESSION, {"group_id": group_id, **_inbox_columns(items)}
    )
    return {str(event_id) for event_id in claimed.scalars()}
