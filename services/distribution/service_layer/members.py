"""The local projection of member's events: each member's owning guide (归属)."""

from __future__ import annotations

from datetime import datetime

from libs.unit_of_work import UnitOfWork
from services.distribution.adapters.repository import Repository


async def record_member_owner(
    uow: UnitOfWork, member_id: str, guide_staff_id: str, store_id: str, changed_at: datetime
) -> None:
    """Remember who owns a member now; an older change arriving late does not win. A member
    without an owning guide (self sign-up) is recorded without one."""
    if not member_id:
        return
    await Repository(uow.session).set_member_owner(member_id, guide_staff_id, store_id, changed_at)
