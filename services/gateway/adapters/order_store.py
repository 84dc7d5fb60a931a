"""Channel orders and counter returns (``channel_orders``, ``channel_returns``): the
statement that accepts a captured order and records its payload's answer in one round trip
(asyncpg), and the cold reads and updates (SQLAlchemy)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from omni.order.v1 import order_pb2
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.pg import Pg
from services.gateway.adapters.tables import channel_orders, channel_returns
from services.gateway.connectors.pos import ReturnCommand
from services.gateway.domain.inbound import AcceptedOrder, later_than


def accepted_of(m: Any, created: bool) -> AcceptedOrder:
    order = order_pb2.Order()
    order.ParseFromString(m["order_proto"])
    return AcceptedOrder(
        m["channel_id"],
        m["channel_order_id"],
        m["order_id"],
        order,
        m["partner_id"],
        m["status"],
        m["accepted_at"],
        created,
    )


# $1 channel, $2 channel order id, $3 order id, $4 order proto, $5 partner, $6 payload id
# (NULL for none), $7 voucher digest, $8 whether to record the payload's answer (201 when
# this statement created the order, 200 when another payload of it won).
_ACCEPT = """
WITH created AS (
    INSERT INTO channel_orders (channel_id, channel_order_id, order_id, order_proto,
                                partner_id, status, payload_id, voucher_code_sha256)
    VALUES ($1, $2, $3, $4, $5, 'accepted', $6, $7)
    ON CONFLICT (channel_id, channel_order_id) DO NOTHING
    RETURNING order_id, partner_id, status
), answered AS (
    UPDATE inbound_payloads
    SET outcome = 'accepted', authenticated = true, channel_id = $1, error = '',
        http_status = CASE WHEN EXISTS (SELECT 1 FROM created) THEN 201 ELSE 200 END
    WHERE $8 AND payload_id = $6
)
SELECT order_id, partner_id, status, true AS created FROM created
UNION ALL
SELECT order_id, partner_id, status, false FROM channel_orders
WHERE channel_id = $1 AND channel_order_id = $2 AND NOT EXISTS (SELECT 1 FROM created)
"""

_FIND = """
SELECT order_id, partner_id, status FROM channel_orders
WHERE channel_id = $1 AND channel_order_id = $2
"""


async def accept(
    pg: Pg,
    order: order_pb2.Order,
    payload_id: int | None,
    partner_id: str,
    voucher_code_sha256: str,
    record_answer: bool,
) -> tuple[str, str, str, bool]:
    """(order id, partner id, status, created): the first payload of a channel order wins."""
    async with pg.connection() as conn:
        row = await conn.fetchrow(
            _ACCEPT,
            order.channel_id,
            order.channel_order_id,
            order.order_id,
            order.SerializeToString(deterministic=True),
            partner_id,
            payload_id,
            voucher_code_sha256,
            record_answer,
        )
        if row is None:
            # Another payload of the same order committed after this statement's snapshot
            # was taken: its row is visible to the next statement.
            row = await conn.fetchrow(_FIND, order.channel_id, order.channel_order_id)
            assert row is not None
            return row["order_id"], row["partner_id"], row["status"], False
    return row["order_id"], row["partner_id"], row["status"], bool(row["created"])


async def find_brief(pg: Pg, channel_id: str, channel_order_id: str) -> tuple[str, str, str] | None:
    """(order id, partner id, status) of an accepted channel order."""
    async with pg.connection() as conn:
        row = await conn.fetchrow(_FIND, channel_id, channel_order_id)
    return None if row is None else (row["order_id"], row["partner_id"], row["status"])


async def find_order(
    session: AsyncSession, channel_id: str, channel_order_id: str
) -> AcceptedOrder | None:
    query = sa.select(channel_orders).where(
        channel_orders.c.channel_id == channel_id,
        channel_orders.c.channel_order_id == channel_order_id,
    )
    row = (await session.execute(query)).first()
    return None if row is None else accepted_of(row._mapping, False)


async def lock_voucher(
    session: AsyncSession, channel_id: str, channel_order_id: str
) -> tuple[AcceptedOrder, str] | None:
    """The voucher order and its code's digest, its row locked until the commit."""
    row = (
        await session.execute(
            sa.select(channel_orders)
            .where(
                channel_orders.c.channel_id == channel_id,
                channel_orders.c.channel_order_id == channel_order_id,
            )
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    return accepted_of(row._mapping, False), str(row._mapping["voucher_code_sha256"])


async def find_order_by_id(session: AsyncSession, order_id: str) -> AcceptedOrder | None:
    row = (
        await session.execute(
            sa.select(channel_orders).where(channel_orders.c.order_id == order_id)
        )
    ).first()
    return None if row is None else accepted_of(row._mapping, False)


async def set_status(session: AsyncSession, order_id: str, status: str) -> AcceptedOrder | None:
    """Forward only: None when not ours or not a step forward."""
    row = (
        await session.execute(
            channel_orders.update()
            .where(
                channel_orders.c.order_id == order_id,
                channel_orders.c.status.notin_(later_than(status)),
            )
            .values(status=status, updated_at=sa.func.now())
            .returning(*channel_orders.c)
        )
    ).first()
    return None if row is None else accepted_of(row._mapping, False)


async def mark_consumed(
    session: AsyncSession, order_id: str, store_id: str, staff_id: str
) -> AcceptedOrder:
    row = (
        await session.execute(
            channel_orders.update()
            .where(channel_orders.c.order_id == order_id)
            .values(
                status="consumed",
                updated_at=sa.func.now(),
                redeemed_at=sa.func.now(),
                redeemed_store_id=store_id,
                redeemed_by=staff_id,
            )
            .returning(*channel_orders.c)
        )
    ).one()
    return accepted_of(row._mapping, True)


async def insert_return(session: AsyncSession, command: ReturnCommand) -> bool:
    """Once per channel + return id: False when it was recorded before."""
    row = (
        await session.execute(
            insert(channel_returns)
            .values(
                channel_id=command.channel_id,
                return_id=command.return_id,
                order_id=command.order_id,
                receiving_location_id=command.receiving_location_id,
                lines=[
                    {"line_id": line_id, "quantity": quantity, "resaleable": resaleable}
                    for line_id, quantity, resaleable in command.lines
                ],
            )
            .on_conflict_do_nothing()
            .returning(channel_returns.c.return_id)
        )
    ).first()
    return row is not None
