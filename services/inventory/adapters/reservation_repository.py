"""Reservations and their lines in the inventory database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.inventory.adapters.tables import reservation_lines, reservations
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
)


class ReservationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, order_id: str, channel: str, expires_at: datetime, now: datetime) -> bool:
        """Insert the reservation header; False when the order already has one.

        Claiming the order first means a concurrent reserve for the same order waits here
        (on the key) instead of holding stock rows it would then have to give back."""
        row = (
            await self.session.execute(
                insert(reservations)
                .values(
                    order_id=order_id,
                    channel=channel,
                    status=ReservationStatus.ACTIVE.value,
                    expires_at=expires_at,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
                .returning(reservations.c.order_id)
            )
        ).first()
        return row is not None

    async def add_lines(self, order_id: str, lines: Sequence[ReservationLine]) -> None:
        await self.session.execute(
            reservation_lines.insert(),
            [
                {
                    "order_id": order_id,
                    "line_id": line.line_id,
                    "sku_code": line.sku_code,
                    "location_id": line.location_id,
                    "quantity": line.quantity,
                }
                for line in lines
            ],
        )

    async def get(self, order_id: str, *, for_update: bool = False) -> Reservation | None:
        query = sa.select(reservations).where(reservations.c.order_id == order_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        lines = await self.session.execute(
            sa.select(reservation_lines)
            .where(reservation_lines.c.order_id == order_id)
            .order_by(reservation_lines.c.line_id)
        )
        m = row._mapping
        return Reservation(
            order_id=m["order_id"],
            channel=m["channel"],
            status=ReservationStatus(m["status"]),
            lines=tuple(
                ReservationLine(r.line_id, r.sku_code, r.location_id, r.quantity) for r in lines
            ),
            expires_at=m["expires_at"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )

    async def set_status(self, order_id: str, status: ReservationStatus) -> None:
        await self.session.execute(
            reservations.update()
            .where(reservations.c.order_id == order_id)
            .values(status=status.value, updated_at=sa.func.now())
        )

    async def move_line(self, order_id: str, line_id: str, location_id: str) -> None:
        await self.session.execute(
            reservation_lines.update()
            .where(reservation_lines.c.order_id == order_id, reservation_lines.c.line_id == line_id)
            .values(location_id=location_id)
        )
        await self.session.execute(
            reservations.update()
            .where(reservations.c.order_id == order_id)
            .values(updated_at=sa.func.now())
        )

    async def lock_due(self, now: datetime, limit: int) -> list[str]:
        """Active reservations past their expiry, locked; rows another replica's sweeper holds
        are skipped, so several replicas share the work without waiting or double-releasing."""
        rows = await self.session.execute(
            sa.select(reservations.c.order_id)
            .where(
                reservations.c.status == ReservationStatus.ACTIVE.value,
                reservations.c.expires_at <= now,
            )
            .order_by(reservations.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [r.order_id for r in rows]
