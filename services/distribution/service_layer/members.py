"""The local projection of member's events: each member's owning guide (归属)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OwnerChange:
    member_id: str
    guide_staff_id: str
    store_id: str
    changed_at: datetime


class OwnerStore(Protocol):
    async def set_member_owners(self, owners: Sequence[tuple[str, str, str, datetime]]) -> None: ...


class OwnerWork(Protocol):
    @property
    def store(self) -> OwnerStore: ...


async def record_member_owners(work: OwnerWork, changes: Sequence[OwnerChange]) -> None:
    """Remember who owns each member now; an older change arriving late does not win (of
    two changes with the same time, the later event does). A member without an owning guide
    (self sign-up) is recorded without one."""
    newest: dict[str, OwnerChange] = {}
    for change in changes:
        if not change.member_id:
            continue
        known = newest.get(change.member_id)
        if known is None or known.changed_at <= change.changed_at:
            newest[change.member_id] = change
    await work.store.set_member_owners(
        [(c.member_id, c.guide_staff_id, c.store_id, c.changed_at) for c in newest.values()]
    )
