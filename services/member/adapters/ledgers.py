"""The points ledger and the stored-value ledger: each balance lives on the member row and
every change is an entry with the balance after it, written in the same transaction."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.member.adapters.tables import Row, members, points_entries, stored_value_entries
from services.member.domain.members import MemberState
from services.member.domain.points import PointsChangeKind
from services.member.domain.stored_value import StoredValueEntryKind


class PointsLedger:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_to_balance(self, member_id: str, delta: int) -> int:
        """Unconditional; the balance after."""
        return int(
            (
                await self.session.execute(
                    members.update()
                    .where(members.c.member_id == member_id)
                    .values(points_balance=members.c.points_balance + delta)
                    .returning(members.c.points_balance)
                )
            ).scalar_one()
        )

    async def debit_if_covered(self, member_id: str, points: int) -> int | None:
        """One conditional UPDATE, so concurrent debits cannot overdraw; the balance after,
        or None when the (active) member's balance does not cover it."""
        balance = (
            await self.session.execute(
                members.update()
                .where(
                    members.c.member_id == member_id,
                    members.c.state == int(MemberState.ACTIVE),
                    members.c.points_balance >= points,
                )
                .values(points_balance=members.c.points_balance - points)
                .returning(members.c.points_balance)
            )
        ).scalar_one_or_none()
        return None if balance is None else int(balance)

    async def add_entry(
        self,
        member_id: str,
        kind: PointsChangeKind,
        delta: int,
        balance_after: int,
        *,
        order_id: str = "",
        return_id: str = "",
        note: str = "",
    ) -> Row:
        return (
            await self.session.execute(
                points_entries.insert()
                .values(
                    member_id=member_id,
                    kind=int(kind),
                    delta=delta,
                    balance_after=balance_after,
                    order_id=order_id,
                    return_id=return_id,
                    note=note,
                    created_at=sa.func.now(),
                )
                .returning(points_entries)
            )
        ).one()

    async def entries(self, member_id: str, limit: int, after_id: int | None) -> list[Row]:
        query = (
            sa.select(points_entries)
            .where(points_entries.c.member_id == member_id)
            .order_by(points_entries.c.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(points_entries.c.id > after_id)
        return list((await self.session.execute(query)).all())

    async def total(self, member_id: str) -> int:
        return int(
            (
                await self.session.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(points_entries.c.delta), 0)).where(
                        points_entries.c.member_id == member_id
                    )
                )
            ).scalar_one()
        )


class StoredValueLedger:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def credit(self, member_id: str, amount_minor: int) -> int | None:
        """The balance after, or None when the member is not active."""
        balance = (
            await self.session.execute(
                members.update()
                .where(members.c.member_id == member_id, members.c.state == int(MemberState.ACTIVE))
                .values(stored_value_minor=members.c.stored_value_minor + amount_minor)
                .returning(members.c.stored_value_minor)
            )
        ).scalar_one_or_none()
        return None if balance is None else int(balance)

    async def debit_if_covered(self, member_id: str, amount_minor: int) -> int | None:
        """One conditional UPDATE (a CHECK constraint backs it): the balance after, or None
        when the active member's balance does not cover the amount."""
        balance = (
            await self.session.execute(
                members.update()
                .where(
                    members.c.member_id == member_id,
                    members.c.state == int(MemberState.ACTIVE),
                    members.c.stored_value_minor >= amount_minor,
                )
                .values(stored_value_minor=members.c.stored_value_minor - amount_minor)
                .returning(members.c.stored_value_minor)
            )
        ).scalar_one_or_none()
        return None if balance is None else int(balance)

    async def add_entry(
        self,
        member_id: str,
        kind: StoredValueEntryKind,
        amount_minor: int,
        balance_after: int,
        *,
        payment_entry_id: uuid.UUID | None = None,
        reference: str = "",
    ) -> Row:
        return (
            await self.session.execute(
                stored_value_entries.insert()
                .values(
                    entry_id=uuid.uuid4(),
                    member_id=member_id,
                    kind=int(kind),
                    amount_minor=amount_minor,
                    balance_after=balance_after,
                    payment_entry_id=payment_entry_id,
                    reference=reference,
                    created_at=sa.func.now(),
                )
                .returning(stored_value_entries)
            )
        ).one()

    async def lock_entry(self, entry_id: uuid.UUID) -> Row | None:
        return (
            await self.session.execute(
                sa.select(stored_value_entries)
                .where(stored_value_entries.c.entry_id == entry_id)
                .with_for_update()
            )
        ).first()

    async def refunded(self, payment_entry_id: uuid.UUID) -> int:
        """What the refunds of one payment add up to."""
        return int(
            (
                await self.session.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(stored_value_entries.c.amount_minor), 0)
                    ).where(stored_value_entries.c.payment_entry_id == payment_entry_id)
                )
            ).scalar_one()
        )

    async def entries(self, member_id: str, limit: int, after_seq: int | None) -> list[Row]:
        query = (
            sa.select(stored_value_entries)
            .where(stored_value_entries.c.member_id == member_id)
            .order_by(stored_value_entries.c.seq)
            .limit(limit)
        )
        if after_seq is not None:
            query = query.where(stored_value_entries.c.seq > after_seq)
        return list((await self.session.execute(query)).all())

    async def total(self, member_id: str) -> int:
        return int(
            (
                await self.session.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(stored_value_entries.c.amount_minor), 0)
                    ).where(stored_value_entries.c.member_id == member_id)
                )
            ).scalar_one()
        )
