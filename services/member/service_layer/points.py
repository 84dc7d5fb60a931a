"""Points use cases: every change writes a ledger entry with the balance after it, in the
same transaction as the balance, so the ledger always sums to the balance."""

from __future__ import annotations

from omni.member.v1 import events_pb2

from libs.errors import FailedPrecondition
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.ledgers import PointsLedger
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.proto import now_timestamp
from services.member.adapters.tables import Row
from services.member.domain.points import PointsChangeKind, validate_redeem
from services.member.service_layer.members import require_usable


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
    """The ledger entry of a change already applied to the balance, announced."""
    entry = await PointsLedger(uow.session).add_entry(
        member_id, kind, delta, balance_after, order_id=order_id, return_id=return_id, note=note
    )
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

    def count() -> None:
        metrics.POINTS_CHANGED.labels(kind.name.lower()).inc()
        metrics.POINTS_VOLUME.labels(kind.name.lower()).inc(abs(delta))

    uow.after_commit(count)
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
    balance = await PointsLedger(uow.session).add_to_balance(member_id, delta)
    return await write_entry(
        uow, member_id, kind, delta, balance, order_id=order_id, return_id=return_id, note=note
    )


async def redeem_points(uow: UnitOfWork, member_id: str, points: int, note: str) -> Row:
    """Spend points; refused (FAILED_PRECONDITION) beyond the balance. The check and the
    debit are one conditional UPDATE, so concurrent redemptions cannot overdraw."""
    validate_redeem(points)
    await require_usable(MemberRepository(uow.session), member_id)
    balance = await PointsLedger(uow.session).debit_if_covered(member_id, points)
    if balance is None:
        raise FailedPrecondition(f"not enough points to redeem {points}")
    return await write_entry(
        uow, member_id, PointsChangeKind.REDEEM, -points, balance, note=note.strip()[:200]
    )


async def list_entries(
    uow: UnitOfWork, member_id: str, limit: int, after_id: int | None
) -> list[Row]:
    await MemberRepository(uow.session).require(member_id)
    return await PointsLedger(uow.session).entries(member_id, limit + 1, after_id)


async def ledger_sum(uow: UnitOfWork, member_id: str) -> int:
    return await PointsLedger(uow.session).total(member_id)
