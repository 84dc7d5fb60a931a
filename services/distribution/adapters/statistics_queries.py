"""Sales statistics and per-order commissions, read from the order records and commission
lines the consumer writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.distribution.adapters.repository import like_prefix
from services.distribution.adapters.tables import Row, commission_lines, order_facts
from services.distribution.domain.commission_rules import BeneficiaryKind

GUIDE_DIMENSION, STORE_DIMENSION = 1, 2
# Statistics dimension (omni.distribution.v1.StatisticsDimension) → what rows group by.
DIMENSIONS: dict[int, sa.ColumnElement[object]] = {
    GUIDE_DIMENSION: order_facts.c.guide_staff_id,
    STORE_DIMENSION: order_facts.c.store_id,
    3: order_facts.c.city,
    4: order_facts.c.province,
    5: order_facts.c.channel_kind,
    6: order_facts.c.flow,
}


def _commission_of(dimension: int) -> sa.ColumnElement[int]:
    """An order's commission as a row of ``dimension`` counts it, net of claw-backs: a guide
    row counts what that guide earned on the order, a store row what that store (or dealer)
    earned on it, in every role; a city, province, channel or flow row the whole order's."""
    if dimension not in (GUIDE_DIMENSION, STORE_DIMENSION):
        return order_facts.c.commission_minor
    if dimension == GUIDE_DIMENSION:
        kinds, beneficiary = [int(BeneficiaryKind.GUIDE)], order_facts.c.guide_staff_id
    else:
        kinds = [int(BeneficiaryKind.STORE), int(BeneficiaryKind.DEALER)]
        beneficiary = order_facts.c.store_id
    return (
        sa.select(
            sa.func.coalesce(
                sa.func.sum(commission_lines.c.paid_minor - commission_lines.c.clawed_minor), 0
            )
        )
        .where(
            commission_lines.c.order_id == order_facts.c.order_id,
            commission_lines.c.beneficiary_kind.in_(kinds),
            commission_lines.c.beneficiary_id == beneficiary,
        )
        .correlate(order_facts)
        .scalar_subquery()
    )


class StatisticsQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sales(
        self, dimension: int, scope_path: str, currency: str, start: datetime, end: datetime
    ) -> list[Row]:
        """(key, order_count, sales, refunded, commission) per value of the dimension, for
        orders completed in [start, end) credited at or below ``scope_path``."""
        key = DIMENSIONS[dimension]
        rows = await self.session.execute(
            sa.select(
                key.label("key"),
                sa.func.count().label("order_count"),
                sa.func.sum(order_facts.c.total_minor).label("sales"),
                sa.func.sum(order_facts.c.refunded_minor).label("refunded"),
                sa.func.sum(_commission_of(dimension)).label("commission"),
            )
            .where(
                order_facts.c.scope_path.like(like_prefix(scope_path)),
                order_facts.c.currency == currency,
                order_facts.c.completed_at >= start,
                order_facts.c.completed_at < end,
            )
            .group_by(key)
            .order_by(key)
        )
        return list(rows)

    async def order_record(self, order_id: str) -> Row | None:
        return (
            await self.session.execute(
                sa.select(order_facts).where(order_facts.c.order_id == order_id)
            )
        ).first()

    async def order_commissions(self, order_id: str) -> list[Row]:
        """(role, beneficiary_kind, beneficiary_id, paid, clawed) of one order."""
        rows: sa.Result[Any] = await self.session.execute(
            sa.select(
                commission_lines.c.role,
                commission_lines.c.beneficiary_kind,
                commission_lines.c.beneficiary_id,
                sa.func.sum(commission_lines.c.paid_minor).label("paid"),
                sa.func.sum(commission_lines.c.clawed_minor).label("clawed"),
            )
            .where(commission_lines.c.order_id == order_id)
            .group_by(
                commission_lines.c.role,
                commission_lines.c.beneficiary_kind,
                commission_lines.c.beneficiary_id,
            )
            .order_by(commission_lines.c.role, commission_lines.c.beneficiary_id)
        )
        return list(rows)
