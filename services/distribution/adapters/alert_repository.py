"""Diversion and price alerts as stored (raised by the commission consumer,
adapters/commission_store.py; listed and resolved here)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.distribution.adapters.repository import like_prefix
from services.distribution.adapters.tables import alerts

ALERT_RESOLVED = 2


class AlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def in_scope(
        self, path: str, after: str, status: int, kind: int, limit: int
    ) -> list[dict[str, object]]:
        """Alerts of dealers at or below ``path``, in alert-id order after ``after``."""
        query = sa.select(alerts).where(
            alerts.c.dealer_path.like(like_prefix(path)), alerts.c.alert_id > after
        )
        if status:
            query = query.where(alerts.c.status == status)
        if kind:
            query = query.where(alerts.c.kind == kind)
        rows = await self.session.execute(query.order_by(alerts.c.alert_id).limit(limit))
        return [dict(r._mapping) for r in rows]

    async def lock(self, alert_id: str) -> dict[str, object] | None:
        row = (
            await self.session.execute(
                sa.select(alerts).where(alerts.c.alert_id == alert_id).with_for_update()
            )
        ).first()
        return dict(row._mapping) if row else None

    async def resolve(self, alert_id: str, note: str, staff_id: str) -> dict[str, object]:
        row = (
            await self.session.execute(
                alerts.update()
                .where(alerts.c.alert_id == alert_id)
                .values(
                    status=ALERT_RESOLVED,
                    resolution_note=note,
                    resolved_by=staff_id,
                    resolved_at=sa.func.now(),
                )
                .returning(alerts)
            )
        ).one()
        return dict(row._mapping)
