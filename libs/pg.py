"""Hot paths on a plain asyncpg connection.

A service's busiest use cases (capture, reserve, accept an inbound order, apply events)
run a few set-based statements per batch; a SQLAlchemy Session costs about 0.5 CPU-ms per
transaction before any work, a raw asyncpg statement a few hundredths of that. ``Pg`` is a
small asyncpg pool beside the service's SQLAlchemy engine (same database), and
``PgTransaction`` its unit of work: statements on one connection, events written to the
outbox in the same transaction (one multi-row INSERT at commit), callbacks after commit.

    async with pg.transaction() as tx:
        await tx.conn.execute("UPDATE ...", ...)
        tx.emit(SomethingHappenedEvent(...), aggregate_id)
        await tx.commit()

Leaving the block without ``commit()`` rolls back, events included.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import asyncpg
from google.protobuf.message import Message
from sqlalchemy.engine import URL

from libs.db import asyncpg_connect_kwargs
from libs.unit_of_work import PendingEvent, outbox_row

# The outbox's columns and the SQL types of their arrays, in the order outbox_arrays gives
# them, for a statement that writes events in one CTE with its own work.
OUTBOX_COLUMNS = "event_id, event_type, topic, key, bucket, envelope, trace_context"
OUTBOX_ARRAY_TYPES = ("uuid[]", "text[]", "text[]", "text[]", "smallint[]", "bytea[]", "jsonb[]")

# One statement for any number of events (column arrays, unnested).
_INSERT_OUTBOX = f"""
INSERT INTO outbox ({OUTBOX_COLUMNS})
SELECT * FROM unnest({", ".join(f"${i}::{t}" for i, t in enumerate(OUTBOX_ARRAY_TYPES, 1))})
"""


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns as Python values (asyncpg hands out text by default).
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def _end_transaction(conn: asyncpg.Connection) -> None:
    # Connections of this pool carry no session state (no SET, LISTEN, advisory locks or
    # cursors outside a transaction), so handing one back costs no round trip, unlike
    # asyncpg's default reset query; only a transaction left open is ended.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class Pg:
    """The asyncpg pool of one service's database, and where its events go."""

    def __init__(
        self,
        url: URL,
        *,
        producer: str,
        topic: str,
        relay_wakeup: asyncio.Event | None = None,
        max_size: int = 4,
    ) -> None:
        self.url = url
        self.producer = producer
        self.topic = topic
        self.relay_wakeup = relay_wakeup
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    **asyncpg_connect_kwargs(self.url),
                    min_size=1,
                    max_size=self.max_size,
                    init=_init_connection,
                    reset=_end_transaction,
                    # Connections idle this long are closed (an idle service holds one).
                    max_inactive_connection_lifetime=300,
                )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for reads outside a transaction."""
        pool = await self._ready_pool()
        async with pool.acquire() as conn:
            yield conn

    def transaction(self) -> PgTransaction:
        return PgTransaction(self)


class PgTransaction:
    def __init__(self, pg: Pg) -> None:
        self._pg = pg
        self._events: list[PendingEvent] = []
        self._taken: list[PendingEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        self._committed = False
        self._pool: asyncpg.Pool | None = None
        self._tx: Any = None
        self.conn: asyncpg.Connection

    async def __aenter__(self) -> PgTransaction:
        self._pool = await self._pg._ready_pool()
        self.conn = await self._pool.acquire()
        try:
            self._tx = self.conn.transaction()
            await self._tx.start()
        except BaseException:
            await self._pool.release(self.conn)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._pool is not None
        try:
            if not self._committed and not self.conn.is_closed():
                await self._tx.rollback()
        finally:
            await self._pool.release(self.conn)

    @property
    def emitted(self) -> list[PendingEvent]:
        return [*self._taken, *self._events]

    def emit(self, message: Message, aggregate_id: str) -> None:
        """Record an event caused by this transaction; it is published after commit."""
        self._events.append(PendingEvent(uuid.uuid4(), aggregate_id, message))

    def outbox_arrays(self) -> list[list[Any]]:
        """The events emitted so far as outbox column arrays (OUTBOX_COLUMNS, typed as
        OUTBOX_ARRAY_TYPES), for the caller to insert in one of its own statements — a
        round trip fewer while its rows are locked; commit writes only later events."""
        taken, self._events = self._events, []
        self._taken += taken
        return outbox_arrays(self._pg.producer, self._pg.topic, taken)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    async def commit(self) -> None:
        if self._events:
            await write_outbox(self.conn, self._pg.producer, self._pg.topic, self._events)
        await self._tx.commit()
        self._committed = True
        if (self._events or self._taken) and self._pg.relay_wakeup is not None:
            self._pg.relay_wakeup.set()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()


async def write_outbox(
    conn: asyncpg.Connection, producer: str, topic: str, events: list[PendingEvent]
) -> None:
    """All the events in one statement."""
    await conn.execute(_INSERT_OUTBOX, *outbox_arrays(producer, topic, events))


def outbox_arrays(producer: str, topic: str, events: list[PendingEvent]) -> list[list[Any]]:
    """The outbox rows of the events, column by column (OUTBOX_COLUMNS)."""
    rows = [outbox_row(producer, topic, event) for event in events]
    return [[row[column] for row in rows] for column in OUTBOX_COLUMNS.split(", ")]
