"""Reading the purchase history (written by the order-events consumer, adapters/
purchase_store.py)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.member.adapters.tables import Row, purchase_history


class PurchaseHistory:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def records(
        self, member_id: str, limit: int, after: tuple[datetime, int] | None
    ) -> list[Row]:
        """Newest first, across all channels, orders and returns."""
        query = (
            sa.select(purchase_history)
            .where(purchase_history.c.member_id == member_id)
            .order_by(purchase_history.c.occurred_at.desc(), purchase_history.c.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                sa.tuple_(purchase_history.c.occurred_at, purchase_history.c.id)
                < sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            )
        return list((await self.session.execute(query)).all())
