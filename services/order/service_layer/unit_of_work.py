"""The order service's unit of work: load aggregates, change them, save them, commit.

Saving writes an order's state, its fulfilment orders, history, returns and the events it
recorded (into the outbox) in one statement, only if nobody changed the order since it was
loaded (else ConcurrentChange: nothing of it is written). Business metrics move after
commit, never for work that rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from libs.errors import Aborted, NotFound
from libs.pg import Pg, PgTransaction
from libs.unit_of_work import PendingEvent, UnitOfWork, outbox_row
from services.order import metrics
from services.order.adapters import events, order_store
from services.order.domain.order import Order
from services.order.domain.state_machine import FINAL, OrderStatus

OutboxRow = dict[str, Any]


class ConcurrentChange(Aborted):
    """Someone changed the order between loading and saving; nothing of it was written."""


def outbox_rows(order: Order, producer: str, topic: str) -> list[OutboxRow]:
    """The order's recorded events as outbox rows (built in the caller's trace context)."""
    return [
        outbox_row(
            producer, topic, PendingEvent(uuid.uuid4(), order.order_id, events.message(order, e))
        )
        for e in order.events
    ]


def metric_callbacks(order: Order) -> list[Callable[[], None]]:
    """What the order's unsaved history means for the business counters."""
    out: list[Callable[[], None]] = []
    kind = metrics.channel_kind_label(order.channel_kind)
    for entry in order.new_history:
        if entry.from_status is entry.to_status:
            continue
        out.append(metrics.TRANSITIONS.labels(entry.to_status.value).inc)
        if entry.to_status in FINAL:
            outcome = "completed" if entry.to_status is OrderStatus.COMPLETED else "cancelled"
            out.append(metrics.ORDERS_FINISHED.labels(kind, order.mode.value, outcome).inc)
        if entry.to_status is OrderStatus.CANCELLED:
            reason = metrics.cancel_reason_label(order.cancel_reason)
            out.append(metrics.CANCELLATIONS.labels(reason).inc)
    return out


class OrderUnitOfWork:
    def __init__(self, conn: asyncpg.Connection, producer: str, topic: str) -> None:
        self.conn = conn
        self.producer = producer
        self.topic = topic
        self._after_commit: list[Callable[[], None]] = []
        self.wrote_events = False

    async def get(self, order_id: str, *, lock: bool = True, details: bool = False) -> Order:
        found = await order_store.load(self.conn, order_id, lock=lock, details=details)
        if found is None:
            raise NotFound(f"order {order_id} not found", field="order_id")
        return found

    async def find(self, order_id: str, *, lock: bool = True) -> Order | None:
        return await order_store.load(self.conn, order_id, lock=lock)

    async def save(self, order: Order, *, release_lease: bool = False) -> None:
        rows = outbox_rows(order, self.producer, self.topic)
        callbacks = metric_callbacks(order)
        saved = await order_store.save(
            self.conn, [order_store.Save(order, rows, release_lease=release_lease)]
        )
        if order.order_id not in saved:
            raise ConcurrentChange(f"order {order.order_id} changed meanwhile; retry")
        self.wrote_events = self.wrote_events or bool(rows)
        self._after_commit.extend(callbacks)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    async def commit(self) -> None:
        """Inside a consumer's transaction the consumer commits; nothing to do here."""

    def _committed(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()


class _PgUnitOfWork(OrderUnitOfWork):
    def __init__(self, tx: PgTransaction, pg: Pg) -> None:
        super().__init__(tx.conn, pg.producer, pg.topic)
        self._tx = tx
        self._pg = pg

    async def commit(self) -> None:
        await self._tx.commit()
        if self.wrote_events and self._pg.relay_wakeup is not None:
            self._pg.relay_wakeup.set()
        self._committed()


@asynccontextmanager
async def transaction(pg: Pg) -> AsyncIterator[_PgUnitOfWork]:
    """``async with transaction(pg) as uow: ...; await uow.commit()`` — leaving without
    commit rolls back."""
    async with pg.transaction() as tx:
        yield _PgUnitOfWork(tx, pg)


async def joining(uow: UnitOfWork) -> OrderUnitOfWork:
    """The order unit of work inside a consumer's transaction (libs.consumer commits it);
    metrics move when that transaction commits."""
    session: AsyncSession = uow.session
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    joined = OrderUnitOfWork(raw.driver_connection, uow.producer, uow.topic)

    def commit_callbacks() -> None:
        joined._committed()

    uow.after_commit(commit_callbacks)
    return joined
