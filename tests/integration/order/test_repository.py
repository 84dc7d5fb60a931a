"""The order repository on real PostgreSQL: one order per channel order id under concurrent
inserts, one winner for a status compare-and-set, one holder of a worker lease, and the
migration's guards on returned quantities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from libs.db import Database, ensure_database, migrate
from libs.errors import FailedPrecondition
from libs.unit_of_work import UnitOfWorkFactory
from services.order.adapters.repository import OrderRepository
from services.order.domain.state_machine import OrderStatus as S

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "order" / "migrations"


@pytest.fixture(scope="module")
async def uow(test_stack) -> AsyncIterator[UnitOfWorkFactory]:
    settings = test_stack.settings("order")
    await ensure_database(settings.database_url())
    await migrate(settings.database_url(), MIGRATIONS)
    db = Database(settings.database_url(), pool_size=12, max_overflow=0)
    yield UnitOfWorkFactory(db, "order", settings.topic("order"))
    await db.dispose()


def order_values(order_id: str, channel_order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "channel_id": "repo-test",
        "channel_order_id": channel_order_id,
        "content_hash": "h",
        "mode": "express_delivery",
        "stock_channel": "repo-test",
        "currency": "CNY",
        "total_minor": 100,
        "status": S.CREATED.value,
        "payment": "paid_online",
    }


def line_values(order_id: str) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order_id,
            "line_id": "L1",
            "position": 0,
            "sku_code": "A",
            "quantity": 2,
            "unit_price_minor": 50,
            "discount_minor": 0,
            "line_total_minor": 100,
        }
    ]


async def insert(uow: UnitOfWorkFactory, order_id: str, channel_order_id: str) -> bool:
    async with uow() as u:
        inserted = await OrderRepository(u.session).insert_order(
            order_values(order_id, channel_order_id), line_values(order_id)
        )
        await u.commit()
        return inserted


async def test_concurrent_inserts_of_one_channel_order_make_one_row(
    uow: UnitOfWorkFactory, unique: str
) -> None:
    results = await asyncio.gather(*(insert(uow, f"O{unique}{i}", f"T{unique}") for i in range(10)))
    assert results.count(True) == 1
    async with uow() as u:
        found = await OrderRepository(u.session).by_channel_order("repo-test", f"T{unique}")
    assert found is not None


async def test_status_compare_and_set_has_one_winner(uow: UnitOfWorkFactory, unique: str) -> None:
    order_id = f"O{unique}"
    await insert(uow, order_id, f"T{unique}")

    async def move(to: S) -> bool:
        async with uow() as u:
            moved = await OrderRepository(u.session).set_status(order_id, S.CREATED, to, "test")
            await u.commit()
            return moved

    results = await asyncio.gather(move(S.RESERVING), move(S.CANCELLED), move(S.UNFILLABLE))
    assert results.count(True) == 1
    async with uow() as u:
        history = await OrderRepository(u.session).history(order_id)
    assert len(history) == 1 and history[0]["from_status"] == "created"


async def test_an_illegal_move_is_refused_even_when_the_expected_status_matches(
    uow: UnitOfWorkFactory, unique: str
) -> None:
    """Compare-and-set decides who moves; the domain's table decides what is a move."""
    order_id = f"O{unique}"
    await insert(uow, order_id, f"T{unique}")
    with pytest.raises(FailedPrecondition, match=r"created.*allocated"):
        async with uow() as u:
            await OrderRepository(u.session).set_status(order_id, S.CREATED, S.ALLOCATED, "skip")
            await u.commit()
    async with uow() as u:
        repo = OrderRepository(u.session)
        row = await repo.get(order_id)
        assert row is not None and row.status is S.CREATED
        assert await repo.history(order_id) == []
        # A legal move still goes through, and a stale expectation still just loses.
        assert await repo.set_status(order_id, S.CREATED, S.RESERVING, "routed")
        assert not await repo.set_status(order_id, S.CREATED, S.CANCELLED, "late")
        await u.commit()


async def test_only_one_worker_holds_the_lease(uow: UnitOfWorkFactory, unique: str) -> None:
    order_id = f"O{unique}"
    await insert(uow, order_id, f"T{unique}")

    async def claim() -> bool:
        async with uow() as u:
            got = await OrderRepository(u.session).claim(order_id, 30)
            await u.commit()
            return got is not None

    assert (await asyncio.gather(*(claim() for _ in range(8)))).count(True) == 1
    async with uow() as u:
        await OrderRepository(u.session).unlease(order_id)
        await u.commit()
    assert await claim()


async def test_the_database_refuses_returning_more_than_sold(
    uow: UnitOfWorkFactory, unique: str
) -> None:
    order_id = f"O{unique}"
    await insert(uow, order_id, f"T{unique}")
    async with uow() as u:
        await OrderRepository(u.session).add_returned(order_id, "L1", 2, 100)
        await u.commit()
    with pytest.raises(IntegrityError):
        async with uow() as u:
            await OrderRepository(u.session).add_returned(order_id, "L1", 1, 0)
            await u.commit()
    async with uow() as u:
        row = (
            await u.session.execute(
                sa.text(
                    "SELECT returned_quantity, refunded_minor FROM order_lines WHERE order_id = :o"
                ),
                {"o": order_id},
            )
        ).one()
    assert tuple(row) == (2, 100)
