"""Members and their identities in the member database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.errors import NotFound
from services.member.adapters.tables import (
    Row,
    member_identities,
    member_merges,
    members,
    ownership_changes,
    purchase_categories,
    purchase_history,
    spent_member_codes,
)
from services.member.domain.members import (
    BoundIdentity,
    ContactChannel,
    Identity,
    IdentityKind,
    Member,
    MemberState,
    NewMember,
    SignUpSource,
)
from services.member.domain.points import Tier


def new_member_id() -> str:
    return "M" + uuid.uuid4().hex[:20].upper()


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, new: NewMember) -> Member | None:
        """Insert a member; None when the phone already belongs to one."""
        row = (
            await self.session.execute(
                insert(members)
                .values(
                    member_id=new_member_id(),
                    phone=new.phone,
                    name=new.name,
                    source=int(new.source),
                    distributor_id=new.distributor_id,
                    owner_guide_staff_id=new.owner_guide_staff_id,
                    owner_store_id=new.owner_store_id,
                    tier=int(Tier.BASIC),
                    points_balance=0,
                    stored_value_minor=0,
                    lifetime_spend_minor=0,
                    order_count=0,
                    consents=sorted(int(c) for c in new.consents),
                    state=int(MemberState.ACTIVE),
                    created_at=sa.func.now(),
                )
                .on_conflict_do_nothing(index_elements=["phone"])
                .returning(members)
            )
        ).first()
        return _to_member(row) if row else None

    async def get(self, member_id: str, *, for_update: bool = False) -> Member | None:
        query = sa.select(members).where(members.c.member_id == member_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return _to_member(row, await self.identities_of(member_id))

    async def require(
        self, member_id: str, *, for_update: bool = False, field: str = "member_id"
    ) -> Member:
        """The member; NOT_FOUND naming ``field`` (the request field that named it)."""
        found = await self.get(member_id, for_update=for_update) if member_id else None
        if found is None:
            raise NotFound(
                f"member {member_id!r} does not exist",
                field=field,
                resource_type="member",
                resource_name=member_id,
            )
        return found

    async def require_active(
        self, member_id: str, *, for_update: bool = False, field: str = "member_id"
    ) -> Member:
        """The member, following merges to the surviving one (ids in old events and cards
        keep working after a merge)."""
        member = await self.require(member_id, for_update=for_update, field=field)
        seen = {member.member_id}
        while member.merged_into is not None:
            member = await self.require(member.merged_into, for_update=for_update, field=field)
            if member.member_id in seen:  # a cycle would be a bug; refuse rather than loop
                raise NotFound(
                    f"member {member_id!r} has no active survivor",
                    field=field,
                    resource_type="member",
                    resource_name=member_id,
                )
            seen.add(member.member_id)
        return member

    async def by_phone(self, phone: str) -> Member | None:
        row = (
            await self.session.execute(
                sa.select(members.c.member_id).where(members.c.phone == phone)
            )
        ).first()
        return await self.get(row.member_id) if row else None

    async def active_by_phone(self, phone: str) -> Member | None:
        """The member who answers for a phone now: its holder, or the member that holder
        was merged into (a merged record keeps its phone)."""
        holder = await self.by_phone(phone)
        if holder is None or holder.active:
            return holder
        return await self.require_active(holder.member_id)

    async def by_identity(self, identity: Identity) -> Member | None:
        owner = await self.identity_owner(identity)
        return await self.get(owner) if owner else None

    async def identity_owner(self, identity: Identity, *, for_update: bool = False) -> str | None:
        query = sa.select(member_identities.c.member_id).where(
            member_identities.c.kind == int(identity.kind),
            member_identities.c.namespace == identity.namespace,
            member_identities.c.external_id == identity.external_id,
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return row.member_id if row else None

    async def bind(self, member_id: str, identity: Identity) -> tuple[str, bool]:
        """Bind unless already bound; returns the owning member's id and whether it is new."""
        inserted = (
            await self.session.execute(
                insert(member_identities)
                .values(
                    kind=int(identity.kind),
                    namespace=identity.namespace,
                    external_id=identity.external_id,
                    member_id=member_id,
                    bound_at=sa.func.now(),
                )
                .on_conflict_do_nothing()
                .returning(member_identities.c.member_id)
            )
        ).first()
        if inserted is not None:
            return member_id, True
        owner = await self.identity_owner(identity)
        assert owner is not None  # the conflict row exists; identities are never deleted
        return owner, False

    async def identities_of(self, member_id: str) -> tuple[BoundIdentity, ...]:
        rows = await self.session.execute(
            sa.select(member_identities)
            .where(member_identities.c.member_id == member_id)
            .order_by(member_identities.c.bound_at, member_identities.c.kind)
        )
        return tuple(
            BoundIdentity(IdentityKind(r.kind), r.namespace, r.external_id, r.bound_at)
            for r in rows
        )

    async def record_owner_change(
        self, member_id: str, previous: str, guide: str, store: str, reason: str
    ) -> sa.Row[tuple[object, ...]]:
        return (
            await self.session.execute(
                ownership_changes.insert()
                .values(
                    member_id=member_id,
                    previous_owner_guide_staff_id=previous,
                    owner_guide_staff_id=guide,
                    owner_store_id=store,
                    reason=reason,
                    changed_at=sa.func.now(),
                )
                .returning(ownership_changes)
            )
        ).one()

    async def update(self, member_id: str, **values: object) -> Member:
        row = (
            await self.session.execute(
                members.update()
                .where(members.c.member_id == member_id)
                .values(**values)
                .returning(members)
            )
        ).one()
        return _to_member(row, await self.identities_of(member_id))

    async def set_tier(self, member_id: str, tier: Tier) -> None:
        await self.session.execute(
            members.update().where(members.c.member_id == member_id).values(tier=int(tier))
        )

    async def ownership_changes(
        self, member_id: str, limit: int, after_id: int | None
    ) -> list[Row]:
        query = (
            sa.select(ownership_changes)
            .where(ownership_changes.c.member_id == member_id)
            .order_by(ownership_changes.c.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(ownership_changes.c.id > after_id)
        return list((await self.session.execute(query)).all())

    # --- merges -------------------------------------------------------------------------

    async def move_identities(self, from_member: str, to_member: str) -> int:
        """Re-point every identity of one member to another; how many moved."""
        return _rowcount(
            await self.session.execute(
                member_identities.update()
                .where(member_identities.c.member_id == from_member)
                .values(member_id=to_member)
            )
        )

    async def move_purchase_history(self, from_member: str, to_member: str) -> int:
        """Re-point the purchase history (and its category rows); how many records moved."""
        moved = _rowcount(
            await self.session.execute(
                purchase_history.update()
                .where(purchase_history.c.member_id == from_member)
                .values(member_id=to_member)
            )
        )
        await self.session.execute(
            purchase_categories.update()
            .where(purchase_categories.c.member_id == from_member)
            .values(member_id=to_member)
        )
        return moved

    async def add_merge_trail(self, **values: object) -> Row:
        return (
            await self.session.execute(
                member_merges.insert()
                .values(merge_id=uuid.uuid4(), merged_at=sa.func.now(), **values)
                .returning(member_merges)
            )
        ).one()

    # --- member codes -------------------------------------------------------------------

    async def spend_code(self, code_id: str, member_id: str, expires_at: datetime) -> bool:
        """Record a member code as used; False when it was used before."""
        spent = (
            await self.session.execute(
                insert(spent_member_codes)
                .values(
                    code_id=code_id,
                    member_id=member_id,
                    expires_at=expires_at,
                    spent_at=sa.func.now(),
                )
                .on_conflict_do_nothing()
                .returning(spent_member_codes.c.code_id)
            )
        ).first()
        return spent is not None

    async def purge_spent_codes(self, expired_before: datetime) -> int:
        return _rowcount(
            await self.session.execute(
                spent_member_codes.delete().where(spent_member_codes.c.expires_at < expired_before)
            )
        )


def _rowcount(result: sa.Result[Any]) -> int:
    return int(cast(sa.CursorResult[Any], result).rowcount)


def _to_member(row: sa.Row[tuple[object, ...]], identities: Sequence[BoundIdentity] = ()) -> Member:
    m = row._mapping
    return Member(
        member_id=m["member_id"],
        phone=m["phone"],
        name=m["name"],
        source=SignUpSource(m["source"]),
        distributor_id=m["distributor_id"],
        owner_guide_staff_id=m["owner_guide_staff_id"],
        owner_store_id=m["owner_store_id"],
        tier=m["tier"],
        points_balance=m["points_balance"],
        stored_value_minor=m["stored_value_minor"],
        lifetime_spend_minor=m["lifetime_spend_minor"],
        order_count=m["order_count"],
        last_purchase_at=m["last_purchase_at"],
        consents=frozenset(ContactChannel(c) for c in m["consents"]),
        state=MemberState(m["state"]),
        merged_into=m["merged_into"],
        created_at=m["created_at"],
        identities=tuple(identities),
    )
