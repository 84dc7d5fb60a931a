"""Statements: the running totals the entries trigger keeps (migration 0003), the totals
frozen when a period closes, and the entries of one statement."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.distribution.adapters.tables import (
    Row,
    closed_periods,
    entries,
    statement_totals,
    statements,
)
from services.distribution.domain.ledger import EntryKind


class SettlementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def frozen_totals(
        self, kind: int, beneficiary_id: str, period: str, currency: str
    ) -> Row | None:
        """The statement's totals as frozen when its period closed."""
        return (
            await self.session.execute(
                sa.select(statements).where(
                    statements.c.beneficiary_kind == kind,
                    statements.c.beneficiary_id == beneficiary_id,
                    statements.c.period == period,
                    statements.c.currency == currency,
                )
            )
        ).first()

    async def running_totals(
        self, kind: int, beneficiary_id: str, period: str, currency: str
    ) -> Row | None:
        """The statement's totals as kept with every entry (always their sum)."""
        return (
            await self.session.execute(
                sa.select(statement_totals).where(
                    statement_totals.c.beneficiary_kind == kind,
                    statement_totals.c.beneficiary_id == beneficiary_id,
                    statement_totals.c.period == period,
                    statement_totals.c.currency == currency,
                )
            )
        ).first()

    async def entries(
        self, kind: int, beneficiary_id: str, period: str, currency: str, after: int, limit: int
    ) -> list[Row]:
        return list(
            (
                await self.session.execute(
                    sa.select(entries)
                    .where(
                        entries.c.beneficiary_kind == kind,
                        entries.c.beneficiary_id == beneficiary_id,
                        entries.c.period == period,
                        entries.c.currency == currency,
                        entries.c.entry_id > after,
                    )
                    .order_by(entries.c.entry_id)
                    .limit(limit)
                )
            ).all()
        )

    async def close(self, hq_id: str, period: str, closed_by: str) -> list[Row]:
        """Record the period closed and freeze every statement of the HQ's tree for it; the
        frozen statements."""
        await self.session.execute(
            closed_periods.insert().values(hq_id=hq_id, period=period, closed_by=closed_by)
        )

        def total_of(entry_kind: EntryKind) -> sa.ColumnElement[object]:
            return sa.func.coalesce(
                sa.func.sum(entries.c.amount_minor).filter(entries.c.kind == int(entry_kind)), 0
            )

        grouped = (
            sa.select(
                entries.c.beneficiary_kind,
                entries.c.beneficiary_id,
                entries.c.period,
                entries.c.currency,
                entries.c.hq_id,
                total_of(EntryKind.COMMISSION),
                total_of(EntryKind.REBATE),
                total_of(EntryKind.CLAWBACK),
                sa.func.sum(entries.c.amount_minor),
                sa.func.count(),
            )
            .where(entries.c.hq_id == hq_id, entries.c.period == period)
            .group_by(
                entries.c.beneficiary_kind,
                entries.c.beneficiary_id,
                entries.c.period,
                entries.c.currency,
                entries.c.hq_id,
            )
        )
        return list(
            (
                await self.session.execute(
                    statements.insert()
                    .from_select(
                        [
                            "beneficiary_kind",
                            "beneficiary_id",
                            "period",
                            "currency",
                            "hq_id",
                            "commission_minor",
                            "rebate_minor",
                            "clawback_minor",
                            "net_minor",
                            "entry_count",
                        ],
                        grouped,
                    )
                    .returning(statements)
                )
            ).all()
        )
