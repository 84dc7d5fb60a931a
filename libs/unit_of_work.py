"""The unit of work: one database transaction that also writes the events it caused to the
outbox, so a state change and its events are committed together or not at all."""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from libs.platform_tables import OUTBOX_BUCKETS, outbox
from libs.telemetry import inject_context


@dataclass(frozen=True)
class PendingEvent:
    event_id: uuid.UUID
    aggregate_id: str
    message: Message


def bucket_for(key: str) -> int:
    return zlib.crc32(key.encode()) % OUTBOX_BUCKETS


class UnitOfWork:
    """``async with uow_factory() as uow: ...; uow.emit(event, key); await uow.commit()``.

    Leaving the block without ``commit()`` rolls everything back, events included.
    """

    def __init__(
        self, db: Database, producer: str, topic: str, relay_wakeup: asyncio.Event | None
    ) -> None:
        self._db = db
        self._producer = producer
        self._topic = topic
        self._relay_wakeup = relay_wakeup
        self._events: list[PendingEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        self._committed = False
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._db.session()
        await self.session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                await self.session.rollback()
        finally:
            await self.session.close()

    @property
    def producer(self) -> str:
        return self._producer

    @property
    def topic(self) -> str:
        """Where this unit of work's events go."""
        return self._topic

    @property
    def emitted(self) -> list[PendingEvent]:
        """The events this unit of work will write (or wrote) to the outbox, in order."""
        return list(self._events)

    def emit(self, message: Message, aggregate_id: str) -> None:
        """Record an event caused by this unit of work; it is published after commit."""
        self._events.append(PendingEvent(uuid.uuid4(), aggregate_id, message))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this unit of work has committed (e.g. count a business
        metric), never if it rolls back."""
        self._after_commit.append(callback)

    async def commit(self) -> None:
        if self._events:
            await self.session.execute(outbox.insert(), [self._row(e) for e in self._events])
        await self.session.commit()
        self._committed = True
        if self._events and self._relay_wakeup is not None:
            self._relay_wakeup.set()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def _row(self, event: PendingEvent) -> dict[str, object]:
        return outbox_row(self._producer, self._topic, event)


def outbox_row(producer: str, topic: str, event: PendingEvent) -> dict[str, object]:
    """The outbox row of an event: its envelope, key, bucket and the current trace context."""
    occurred_at = Timestamp()
    occurred_at.FromDatetime(datetime.now(UTC))
    envelope = envelope_pb2.EventEnvelope(
        event_id=str(event.event_id),
        event_type=event.message.DESCRIPTOR.full_name,
        occurred_at=occurred_at,
        aggregate_id=event.aggregate_id,
        producer=producer,
        payload=event.message.SerializeToString(),
    )
    return {
        "event_id": event.event_id,
        "event_type": envelope.event_type,
        "topic": topic,
        "key": event.aggregate_id,
        "bucket": bucket_for(event.aggregate_id),
        "envelope": envelope.SerializeToString(),
        "trace_context": inject_context(),
    }


class UnitOfWorkFactory:
    """Makes units of work for one service: its database, its topic, its relay."""

    def __init__(
        self, db: Database, producer: str, topic: str, relay_wakeup: asyncio.Event | None = None
    ) -> None:
        self.db = db
        self.producer = producer
        self.topic = topic
        self.relay_wakeup = relay_wakeup

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.db, self.producer, self.topic, self.relay_wakeup)
