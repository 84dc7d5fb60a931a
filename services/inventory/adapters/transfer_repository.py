"""Transfers and their lines in the inventory database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.inventory.adapters.tables import transfer_lines, transfers
from services.inventory.domain.transfers import Transfer, TransferLine, TransferStatus


class TransferRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, transfer: Transfer) -> None:
        await self.session.execute(
            transfers.insert().values(
                transfer_id=transfer.transfer_id,
                from_location_id=transfer.from_location_id,
                to_location_id=transfer.to_location_id,
                status=transfer.status.value,
                reason=transfer.reason,
                requested_at=transfer.requested_at,
            )
        )
        await self.session.execute(
            transfer_lines.insert(),
            [
                {
                    "transfer_id": transfer.transfer_id,
                    "sku_code": line.sku_code,
                    "requested": line.requested,
                }
                for line in transfer.lines
            ],
        )

    async def get(self, transfer_id: str, *, for_update: bool = False) -> Transfer | None:
        query = sa.select(transfers).where(transfers.c.transfer_id == transfer_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        lines = await self.session.execute(
            sa.select(transfer_lines)
            .where(transfer_lines.c.transfer_id == transfer_id)
            .order_by(transfer_lines.c.sku_code)
        )
        m = row._mapping
        return Transfer(
            transfer_id=m["transfer_id"],
            from_location_id=m["from_location_id"],
            to_location_id=m["to_location_id"],
            status=TransferStatus(m["status"]),
            lines=tuple(
                TransferLine(r.sku_code, r.requested, r.shipped, r.received) for r in lines
            ),
            reason=m["reason"],
            requested_at=m["requested_at"],
            shipped_at=m["shipped_at"],
            received_at=m["received_at"],
        )

    async def save_progress(self, transfer: Transfer) -> None:
        """Store the new status, times and the shipped/received quantities of each line."""
        await self.session.execute(
            transfers.update()
            .where(transfers.c.transfer_id == transfer.transfer_id)
            .values(
                status=transfer.status.value,
                shipped_at=transfer.shipped_at,
                received_at=transfer.received_at,
            )
        )
        for line in transfer.lines:
            await self.session.execute(
                transfer_lines.update()
                .where(
                    transfer_lines.c.transfer_id == transfer.transfer_id,
                    transfer_lines.c.sku_code == line.sku_code,
                )
                .values(shipped=line.shipped, received=line.received)
            )
