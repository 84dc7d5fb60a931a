"""The order store on real PostgreSQL: one order per channel order id under concurrent
inserts (also within one batch), one winner among concurrent saves of the same order (the
others write nothing — no history, no events), one holder of a worker lease, and the
migration's guards on returned quantities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from libs.db import ensure_database, migrate
from libs.errors import FailedPrecondition
from libs.pg import Pg
from services.order.adapters import order_store
from services.order.domain.order import Order
from services.order.domain.orders import AisleHandover, Mode, NewLine, NewOrder, Payment
from services.order.domain.state_machine import OrderStatus as S

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "order" / "migrations"


@pytest.fixture(scope="module")
async def pg(test_stack) -> AsyncIterator[Pg]:
    settings = test_stack.settings("order")
    await ensure_database(settings.database_url())
    await migrate(settings.database_url(), MIGRATIONS)
    pool = Pg(settings.database_url(), producer="order", topic="t", max_size=12)
    yield pool
    await pool.close()


def new_order(channel_order_id: str) -> NewOrder:
    return NewOrder(
        channel_id="store-test",
        channel_kind="1",
        channel_order_id=channel_order_id,
        member_id="M",
        guest_contact="",
        mode=Mode.EXPRESS_DELIVERY,
        aisle_handover=AisleHandover.NONE,
        selling_store_id="",
        selling_guide_staff_id="",
        referring_guide_code="",
        pickup_store_id="",
        address=None,
        lines=(NewLine("A", 2, 50, 0, "CNY"),),
        payment=Payment.PAID_ONLINE,
        stock_channel="store-test",
    )


def captured(channel_order_id: str) -> Order:
    return Order.capture(Order.new_id(), new_order(channel_order_id), {}, datetime.now(UTC))


async def insert(pg: Pg, orders: list[Order]) -> set[str]:
    async with pg.connection() as conn:
        outcome = await order_store.insert_new(
            conn,
            [order_store.NewCapture(o, f"r-{o.order_id}", b"f", None, []) for o in orders],
        )
    return outcome.inserted


async def load(pg: Pg, order_id: str) -> Order:
    async with pg.connection() as conn:
        found = await order_store.load(conn, order_id, details=True)
    assert found is not None
    return found


async def save(pg: Pg, order: Order) -> bool:
    async with pg.connection() as conn:
        return order.order_id in await order_store.save(conn, [order_store.Save(order, [])])


async def test_concurrent_inserts_of_one_channel_order_make_one_order(pg: Pg, unique: str) -> None:
    results = await asyncio.gather(*(insert(pg, [captured(f"T{unique}")]) for _ in range(10)))
    assert sum(len(r) for r in results) == 1
    async with pg.connection() as conn:
        found = await order_store.by_channel_orders(conn, [("store-test", f"T{unique}")])
    (order,) = found.values()
    assert [line.quantity for line in order.lines] == [2]
    assert [h.note for h in (await load(pg, order.order_id)).history] == ["captured"]


async def test_two_of_one_channel_order_in_one_statement_make_one_order(
    pg: Pg, unique: str
) -> None:
    first, second = captured(f"B{unique}"), captured(f"B{unique}")
    assert await insert(pg, [first, second]) == {first.order_id}


async def test_concurrent_saves_of_one_order_have_one_winner(pg: Pg, unique: str) -> None:
    order = captured(f"S{unique}")
    await insert(pg, [order])
    copies = [await load(pg, order.order_id) for _ in range(3)]
    when = datetime.now(UTC)
    copies[0].begin_cancel("customer", when)
    copies[1].unroutable({}, 1, "no stock", when, when)
    copies[2].begin_cancel("other", when)
    results = await asyncio.gather(*(save(pg, c) for c in copies))
    assert results.count(True) == 1
    stored = await load(pg, order.order_id)
    moves = [(h.from_status, h.to_status) for h in stored.history if h.from_status != h.to_status]
    assert len(moves) == 1 and moves[0][0] is S.CREATED
    assert stored.version == 2


async def test_an_illegal_move_is_refused_and_a_stale_version_just_loses(
    pg: Pg, unique: str
) -> None:
    """The aggregate decides what is a move; the version decides who moves."""
    order = captured(f"I{unique}")
    await insert(pg, [order])
    loaded = await load(pg, order.order_id)
    with pytest.raises(FailedPrecondition, match=r"created.*allocated"):
        loaded.allocate(datetime.now(UTC))
    assert (await load(pg, order.order_id)).status is S.CREATED
    fresh = await load(pg, order.order_id)
    stale = await load(pg, order.order_id)
    fresh.begin_cancel("customer", datetime.now(UTC))
    assert await save(pg, fresh)
    stale.unroutable({}, 1, "late", datetime.now(UTC), datetime.now(UTC))
    assert not await save(pg, stale)
    assert (await load(pg, order.order_id)).status is S.CANCELLED


async def test_only_one_worker_holds_the_lease(pg: Pg, unique: str) -> None:
    order = captured(f"L{unique}")
    await insert(pg, [order])

    async def claim() -> bool:
        async with pg.connection() as conn:
            return await order_store.claim(conn, order.order_id, 30)

    assert (await asyncio.gather(*(claim() for _ in range(8)))).count(True) == 1
    async with pg.connection() as conn:
        await order_store.unlease(conn, order.order_id)
    assert await claim()


async def test_the_database_refuses_returning_more_than_sold(pg: Pg, unique: str) -> None:
    order = captured(f"R{unique}")
    await insert(pg, [order])
    async with pg.connection() as conn:
        await conn.execute(
            "UPDATE order_lines SET returned_quantity = 2, refunded_minor = 100 "
            "WHERE order_id = $1",
            order.order_id,
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE order_lines SET returned_quantity = 3 WHERE order_id = $1",
                order.order_id,
            )
        row = await conn.fetchrow(
            "SELECT returned_quantity, refunded_minor FROM order_lines WHERE order_id = $1",
            order.order_id,
        )
    assert tuple(row) == (2, 100)
