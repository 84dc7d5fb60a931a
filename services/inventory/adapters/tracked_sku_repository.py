"""Tracked SKUs in the inventory database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.inventory.adapters.tables import tracked_skus
from services.inventory.domain.tracked_skus import TrackedSku


class TrackedSkuRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def track(self, sku_code: str, style_code: str, barcode: str) -> bool:
        """Start tracking a SKU; False when it was already tracked."""
        inserted = await self.session.execute(
            insert(tracked_skus)
            .values(sku_code=sku_code, style_code=style_code, barcode=barcode)
            .on_conflict_do_nothing()
            .returning(tracked_skus.c.sku_code)
        )
        return inserted.first() is not None

    async def get(self, sku_code: str) -> TrackedSku | None:
        row = (
            await self.session.execute(
                sa.select(tracked_skus).where(tracked_skus.c.sku_code == sku_code)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return TrackedSku(m["sku_code"], m["style_code"], m["barcode"], m["tracked_since"])

    async def count(self) -> int:
        return int(
            (
                await self.session.execute(sa.select(sa.func.count()).select_from(tracked_skus))
            ).scalar_one()
        )

    async def existing(self, sku_codes: list[str]) -> set[str]:
        """Which of these SKUs inventory tracks."""
        if not sku_codes:
            return set()
        rows = await self.session.execute(
            sa.select(tracked_skus.c.sku_code).where(tracked_skus.c.sku_code.in_(set(sku_codes)))
        )
        return {r.sku_code for r in rows}
