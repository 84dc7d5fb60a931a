"""E-member codes: issued to the app, resolved (and spent) by the POS."""

from __future__ import annotations

from datetime import datetime, timedelta

from libs.errors import DomainError, FailedPrecondition
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.domain import member_codes
from services.member.domain.members import Member
from services.member.service_layer.members import require_usable

# Spent ids are kept a while past expiry: an expired code is refused by its signature's
# timestamp anyway, so the row is only needed until then (plus clock skew).
SPENT_RETENTION = timedelta(minutes=10)


async def issue_code(
    uow: UnitOfWork, key: bytes, member_id: str, now: datetime, ttl: timedelta
) -> tuple[str, datetime]:
    await require_usable(MemberRepository(uow.session), member_id)
    text, code = member_codes.issue(key, member_id, now, ttl)
    metrics.MEMBER_CODES.labels("issued").inc()
    return text, code.expires_at


async def resolve_code(uow: UnitOfWork, key: bytes, text: str, now: datetime) -> Member:
    """The member behind a genuine, unexpired, unspent code; spends it. Forged →
    INVALID_ARGUMENT, expired or already used → FAILED_PRECONDITION."""
    try:
        code = member_codes.verify(key, text, now)
    except DomainError as error:
        metrics.MEMBER_CODES.labels(
            "expired" if isinstance(error, FailedPrecondition) else "forged"
        ).inc()
        raise
    repo = MemberRepository(uow.session)
    if not await repo.spend_code(code.code_id, code.member_id, code.expires_at):
        metrics.MEMBER_CODES.labels("replayed").inc()
        raise FailedPrecondition("member code already used; show a fresh one")
    member = await repo.require_active(code.member_id)
    uow.after_commit(lambda: metrics.MEMBER_CODES.labels("resolved").inc())
    return member


async def purge_spent(uow: UnitOfWork, now: datetime) -> int:
    return await MemberRepository(uow.session).purge_spent_codes(now - SPENT_RETENTION)
