"""Points use cases: every change writes a ledger entry with the balance after it, in the
same transaction as the balance, so the ledger always sums to the balance."""

from __future__ import annotations

import sqlalchemy as sa
from omni.member.v1 import events_pb2

from libs.errors import FailedPrecondition
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.proto import now_timestamp
from services.member.adapters.tables import members, points_entries
from services.member.domain.members import MemberState
from services.member.domain.points import PointsChangeKind, validate_redeem
from services.member.service_layer.members import require_usable

Row = sa.Row[tuple[object, ...]]


async def write_entry(
    uow: UnitOfWork,
    member_id: str,
    kind: PointsChangeKind,
    delta: int,
    balance_after: int,
    *,
    order_id: str = "",
    return_id: str = "",
    note: str = "",
) -> Row:
    entry = (
        await uow.session.execute(
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
    uow.emit(
        events_pb2.MemberPointsChangedEvent(
            member_id=member_id,
            kind=int(kind),  # type: ignore[arg-type]
            delta=delta,
            balance=balance_after,
            order_id=order_id,
            return_id=return_id,
            change_time=now_timestamp(),
        ),
        aggregate_id=member_id,
    )
    metrics.POINTS_CHANGED.labels(kind.name.lower()).inc()
    metrics.POINTS_VOLUME.labels(kind.name.lower()).inc(abs(delta))
    return entry


async def change_points(
    uow: UnitOfWork,
    member_id: str,
    kind: PointsChangeKind,
    delta: int,
    *,
    order_id: str = "",
    return_id: str = "",
    note: str = "",
) -> Row:
    """Unconditional change (earn, reverse, merge): a reversal may take the balance below
    zero when the earned points were already spent — the debt is kept, not forgiven."""
    balance = (
        await uow.session.execute(
            members.update()
            .where(members.c.member_id == member_id)
            .values(points_balance=members.c.points_balance + delta)
            .returning(members.c.points_balance)
        )
    ).scalar_one()
    return await write_entry(
        uow, member_id, kind, delta, balance, order_id=order_id, return_id=return_id, note=note
    )


async def redeem_points(uow: UnitOfWork, member_id: str, points: int, note: str) -> Row:
    """Spend points; refused (FAILED_PRECONDITION) beyond the balance. The check and the
    debit are one conditional UPDATE, so concurrent redemptions cannot overdraw."""
    validate_redeem(points)
    await require_usable(MemberRepository(uow.session), member_id)
    balance = (
        await uow.session.execute(
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
    if balance is None:
        raise FailedPrecondition(f"not enough points to redeem {points}")
    return await write_entry(
        uow, member_id, PointsChangeKind.REDEEM, -points, balance, note=note.strip()[:200]
    )


async def list_entries(
    uow: UnitOfWork, member_id: str, limit: int, after_id: int | None
) -> list[Row]:
    await MemberRepository(uow.session).require(member_id)
    query = (
        sa.select(points_entries)
        .where(points_entries.c.member_id == member_id)
        .order_by(points_entries.c.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        query = query.where(points_entries.c.id > after_id)
    return list((await uow.session.execute(query)).all())


async def ledger_sum(uow: UnitOfWork, member_id: str) -> int:
    total = (
        await uow.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(points_entries.c.delta), 0)).where(
                points_entries.c.member_id == member_id
            )
        )
    ).scalar_one()
    return int(total)
