"""Group commit of the order path: concurrent captures share the statement that inserts new
orders, and orders driven at the same time share the statement that saves them.

Each is one autocommit statement per batch (libs/batching.Batcher): a batch's orders, lines,
fulfilment orders, history and events are written together, each order all or nothing on
its own (an order changed concurrently is left out, its caller told so). A request id or a
channel order id appearing twice in one batch goes to the next statement, so the unique
indexes decide between them as between separate calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from libs.batching import Batcher
from libs.errors import InvalidArgument
from libs.pg import Pg
from services.order.adapters import order_store
from services.order.adapters.order_store import NewCapture, Save
from services.order.domain.order import Order
from services.order.service_layer.unit_of_work import metric_callbacks, outbox_rows

MAX_BATCH = 100


@dataclass(frozen=True)
class Inserted:
    """The capture's outcome: its own order is new (``existing`` None), or the channel
    order id (or the request id) was taken before and this is the order it names."""

    existing: Order | None


class OrderBatches:
    def __init__(self, pg: Pg) -> None:
        self._pg = pg
        self._inserts: Batcher[NewCapture, Inserted] = Batcher(
            self._insert_batch, max_batch=MAX_BATCH, name="order-insert"
        )
        self._saves: Batcher[Save, bool] = Batcher(
            self._save_batch, max_batch=MAX_BATCH, name="order-save"
        )

    async def close(self) -> None:
        await self._inserts.close()
        await self._saves.close()

    async def insert(
        self, order: Order, request_id: str, fingerprint: bytes, lease_seconds: float
    ) -> Inserted:
        """Insert a just-captured order (with its events) unless its request id or channel
        order id is taken; the order comes back leased to this caller."""
        rows = outbox_rows(order, self._pg.producer, self._pg.topic)
        callbacks = metric_callbacks(order)
        result = await self._inserts.submit(
            NewCapture(
                order,
                request_id,
                fingerprint,
                order.created_at + timedelta(seconds=lease_seconds),
                rows,
            )
        )
        if result.existing is None:
            self._committed(callbacks, bool(rows))
        return result

    async def save(self, order: Order, *, release_lease: bool = False) -> bool:
        """Save the order's changes if its version still matches (False: changed meanwhile,
        nothing written)."""
        rows = outbox_rows(order, self._pg.producer, self._pg.topic)
        callbacks = metric_callbacks(order)
        saved = await self._saves.submit(Save(order, rows, release_lease))
        if saved:
            self._committed(callbacks, bool(rows))
        return saved

    def _committed(self, callbacks: Sequence[Callable[[], None]], events: bool) -> None:
        for callback in callbacks:
            callback()
        if events and self._pg.relay_wakeup is not None:
            self._pg.relay_wakeup.set()

    async def _insert_batch(self, batch: Sequence[NewCapture]) -> list[Inserted | BaseException]:
        outcomes: dict[int, Inserted | BaseException] = {}
        pending = list(enumerate(batch))
        async with self._pg.connection() as conn:
            while pending:
                round_, pending = _distinct(pending)
                result = await order_store.insert_new(conn, [c for _, c in round_])
                unclaimed = [c.request_id for _, c in round_ if c.request_id not in result.claimed]
                prints = (
                    await order_store.request_fingerprints(conn, "CaptureOrder", unclaimed)
                    if unclaimed
                    else {}
                )
                lookups: list[tuple[int, NewCapture]] = []
                for i, c in round_:
                    if c.order.order_id in result.inserted:
                        outcomes[i] = Inserted(None)
                    elif (
                        c.request_id not in result.claimed
                        and prints.get(c.request_id) != c.fingerprint
                    ):
                        outcomes[i] = InvalidArgument.field(
                            "request_id", "was already used for a different request"
                        )
                    else:
                        lookups.append((i, c))
                if lookups:
                    found = await order_store.by_channel_orders(
                        conn,
                        [(c.order.channel_id, c.order.channel_order_id) for _, c in lookups],
                    )
                    for i, c in lookups:
                        existing = found.get((c.order.channel_id, c.order.channel_order_id))
                        outcomes[i] = (
                            Inserted(existing)
                            if existing is not None
                            else InvalidArgument.field(
                                "request_id", "was already used for a different request"
                            )
                        )
        return [outcomes[i] for i in range(len(batch))]

    async def _save_batch(self, batch: Sequence[Save]) -> list[bool | BaseException]:
        outcomes: dict[int, bool] = {}
        pending = list(enumerate(batch))
        async with self._pg.connection() as conn:
            while pending:
                # One save per order per statement (two drivers never share an order, but a
                # caller may save twice in quick succession).
                seen: set[str] = set()
                round_: list[tuple[int, Save]] = []
                later: list[tuple[int, Save]] = []
                for i, s in pending:
                    (later if s.order.order_id in seen else round_).append((i, s))
                    seen.add(s.order.order_id)
                pending = later
                saved = await order_store.save(conn, [s for _, s in round_])
                for i, s in round_:
                    outcomes[i] = s.order.order_id in saved
        return [outcomes[i] for i in range(len(batch))]


def _distinct(
    items: list[tuple[int, NewCapture]],
) -> tuple[list[tuple[int, NewCapture]], list[tuple[int, NewCapture]]]:
    """The captures that can share one statement (distinct request ids and channel order
    ids), and the rest."""
    requests: set[str] = set()
    keys: set[tuple[str, str]] = set()
    now_: list[tuple[int, NewCapture]] = []
    later: list[tuple[int, NewCapture]] = []
    for i, c in items:
        key = (c.order.channel_id, c.order.channel_order_id)
        if c.request_id in requests or key in keys:
            later.append((i, c))
        else:
            requests.add(c.request_id)
            keys.add(key)
            now_.append((i, c))
    return now_, later
