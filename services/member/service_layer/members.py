"""Member use cases: sign-up (self, guide-assisted, virtual guide, distributor import),
lookup, identity binding, ownership transfer, contact consent."""

from __future__ import annotations

from dataclasses import dataclass

from omni.member.v1 import events_pb2

from libs.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.proto import now_timestamp
from services.member.adapters.tables import Row
from services.member.domain.members import (
    ID_PATTERN,
    ContactChannel,
    Identity,
    IdentityKind,
    Member,
    NewMember,
    SignUpSource,
    validate_identity,
    validate_sign_up,
    validate_transfer,
)

SIGN_UP_REASON = "sign-up"
MAX_IMPORT_ROWS = 1000


async def require_usable(
    repo: MemberRepository, member_id: str, *, lock: bool = False, field: str = "member_id"
) -> Member:
    """A member a command may act on: it exists (else NOT_FOUND naming ``field``) and was not
    merged away (the caller must use the surviving member, whose id the error names)."""
    member = await repo.require(member_id, for_update=lock, field=field)
    if not member.active:
        raise FailedPrecondition(
            f"member {member_id} was merged into {member.merged_into}; use that member"
        )
    return member


async def register_member(uow: UnitOfWork, new: NewMember) -> Member:
    """One member per phone: a second sign-up with the same phone is ALREADY_EXISTS. A guided
    sign-up makes the guide the owner (归属) and starts the ownership history. Identities
    given at sign-up are bound, and refused when they belong to another member."""
    repo = MemberRepository(uow.session)
    member = await repo.add(new)
    if member is None:
        raise AlreadyExists("a member with this phone already exists")
    await _after_sign_up(uow, repo, member, new)
    return await repo.require(member.member_id)


async def _after_sign_up(
    uow: UnitOfWork, repo: MemberRepository, member: Member, new: NewMember
) -> None:
    uow.after_commit(lambda: metrics.MEMBERS_REGISTERED.labels(new.source.name.lower()).inc())
    if new.owner_guide_staff_id:
        await repo.record_owner_change(
            member.member_id, "", new.owner_guide_staff_id, new.owner_store_id, SIGN_UP_REASON
        )
    uow.emit(
        events_pb2.MemberRegisteredEvent(
            member_id=member.member_id,
            source=int(new.source),  # type: ignore[arg-type]
            owner_guide_staff_id=new.owner_guide_staff_id,
            owner_store_id=new.owner_store_id,
            register_time=now_timestamp(),
            distributor_id=new.distributor_id,
        ),
        aggregate_id=member.member_id,
    )
    for identity in new.identities:
        await bind_identity_to(uow, repo, member.member_id, identity)


async def bind_identity_to(
    uow: UnitOfWork, repo: MemberRepository, member_id: str, identity: Identity
) -> bool:
    """Binds; True if newly bound, False if it was already this member's. An identity of
    another member is refused: only an explicit merge moves it."""
    owner, created = await repo.bind(member_id, identity)
    if owner != member_id:
        raise FailedPrecondition(
            f"the identity belongs to member {owner}; merge the members to move it"
        )
    if not created:
        return False
    uow.emit(
        events_pb2.MemberIdentityBoundEvent(
            member_id=member_id,
            kind=int(identity.kind),  # type: ignore[arg-type]
            namespace=identity.namespace,
            bind_time=now_timestamp(),
        ),
        aggregate_id=member_id,
    )
    return True


async def get_member(uow: UnitOfWork, member_id: str) -> Member:
    return await MemberRepository(uow.session).require(member_id)


async def lookup_by_phone(uow: UnitOfWork, phone: str) -> Member:
    found = await MemberRepository(uow.session).by_phone(phone)
    if found is None:
        raise NotFound("no member has this phone", field="phone", resource_type="member")
    return found


async def lookup_by_identity(uow: UnitOfWork, identity: Identity) -> Member:
    found = await MemberRepository(uow.session).by_identity(identity)
    if found is None:
        raise NotFound("no member has this identity", field="identity", resource_type="member")
    return found


@dataclass(frozen=True)
class ImportRow:
    phone: str
    name: str
    distributor_customer_id: str
    guide_staff_id: str
    store_id: str
    consents: list[int]


@dataclass(frozen=True)
class ImportResult:
    row_index: int
    outcome: str  # "created" | "existing" | "rejected"
    member_id: str = ""
    violations: tuple[tuple[str, str], ...] = ()


def validate_import(distributor_id: str, rows: list[ImportRow]) -> None:
    """The request as a whole (bad rows are reported per row, not refused)."""
    v = Validator()
    v.check(bool(ID_PATTERN.match(distributor_id)), "distributor_id", "is required (an id)")
    v.check(bool(rows), "rows", "must not be empty")
    v.check(len(rows) <= MAX_IMPORT_ROWS, "rows", f"at most {MAX_IMPORT_ROWS} rows per call")
    v.raise_if_any()


async def import_members(
    uow: UnitOfWork, distributor_id: str, rows: list[ImportRow]
) -> list[ImportResult]:
    """Bulk import from a distributor system. Idempotent beyond the request id: a phone that
    is already a member is EXISTING (the distributor's customer id is bound to it), so a
    re-run of the same file creates nothing twice. Malformed rows are REJECTED with their
    field violations; the good rows still go in."""
    validate_import(distributor_id, rows)
    repo = MemberRepository(uow.session)
    results: list[ImportResult] = []
    for index, row in enumerate(rows):
        v = Validator()
        identities: tuple[Identity, ...] = ()
        if row.distributor_customer_id:
            identity = validate_identity(
                v,
                int(IdentityKind.DISTRIBUTOR_CUSTOMER_ID),
                distributor_id,
                row.distributor_customer_id,
                "distributor_customer_id",
            )
            identities = (identity,) if identity else ()
        new = validate_sign_up(
            v,
            phone=row.phone,
            name=row.name,
            source=int(SignUpSource.DISTRIBUTOR_IMPORT),
            guide_staff_id=row.guide_staff_id,
            store_id=row.store_id,
            consents=row.consents,
            distributor_id=distributor_id,
            identities=identities,
        )
        if new is None:
            results.append(_rejected(index, v))
            continue
        results.append(await _import_one(uow, repo, index, new))
    outcomes = [result.outcome for result in results]

    def count() -> None:
        for outcome in outcomes:
            metrics.MEMBERS_IMPORTED.labels(outcome).inc()

    uow.after_commit(count)
    return results


def _rejected(index: int, v: Validator) -> ImportResult:
    return ImportResult(
        index, "rejected", violations=tuple((x.field, x.description) for x in v.violations)
    )


async def _import_one(
    uow: UnitOfWork, repo: MemberRepository, index: int, new: NewMember
) -> ImportResult:
    # A phone or identity of a merged record answers for the member it was merged into.
    for identity in new.identities:
        owner = await repo.identity_owner(identity)
        if owner is not None:
            owner = (await repo.require_active(owner)).member_id
            existing = await repo.active_by_phone(new.phone)
            if existing is not None and existing.member_id == owner:
                return ImportResult(index, "existing", owner)
            return ImportResult(
                index,
                "rejected",
                violations=(("distributor_customer_id", "is already bound to a different member"),),
            )
    member = await repo.add(new)
    if member is not None:
        await _after_sign_up(uow, repo, member, new)
        return ImportResult(index, "created", member.member_id)
    existing = await repo.active_by_phone(new.phone)
    assert existing is not None  # the insert conflicted on this phone
    for identity in new.identities:
        await bind_identity_to(uow, repo, existing.member_id, identity)
    return ImportResult(index, "existing", existing.member_id)


async def transfer_ownership(
    uow: UnitOfWork, member_id: str, guide_staff_id: str, store_id: str, reason: str
) -> tuple[Member, Row]:
    """Moves the member to another guide (e.g. the guide left), with the reason; the
    history keeps every change. Transferring to the current owner is refused."""
    v = Validator()
    validate_transfer(v, guide_staff_id, store_id, reason)
    v.raise_if_any()
    repo = MemberRepository(uow.session)
    member = await require_usable(repo, member_id, lock=True)
    if (member.owner_guide_staff_id, member.owner_store_id) == (guide_staff_id, store_id):
        raise FailedPrecondition("the member is already owned by this guide and store")
    change = await repo.record_owner_change(
        member_id, member.owner_guide_staff_id, guide_staff_id, store_id, reason.strip()
    )
    updated = await repo.update(
        member_id, owner_guide_staff_id=guide_staff_id, owner_store_id=store_id
    )
    uow.emit(
        events_pb2.MemberOwnerChangedEvent(
            member_id=member_id,
            previous_owner_guide_staff_id=member.owner_guide_staff_id,
            owner_guide_staff_id=guide_staff_id,
            owner_store_id=store_id,
            reason=reason.strip(),
            change_time=now_timestamp(),
        ),
        aggregate_id=member_id,
    )
    uow.after_commit(metrics.OWNERSHIP_TRANSFERS.inc)
    return updated, change


async def list_ownership_changes(
    uow: UnitOfWork, member_id: str, limit: int, after_id: int | None
) -> list[Row]:
    repo = MemberRepository(uow.session)
    await repo.require(member_id)
    return await repo.ownership_changes(member_id, limit + 1, after_id)


async def set_contact_consent(
    uow: UnitOfWork, member_id: str, channel: int, consented: bool
) -> Member:
    if channel not in ContactChannel._value2member_map_:
        raise InvalidArgument.field("channel", "must be a known contact channel")
    repo = MemberRepository(uow.session)
    member = await require_usable(repo, member_id, lock=True)
    wanted = set(member.consents)
    if consented:
        wanted.add(ContactChannel(channel))
    else:
        wanted.discard(ContactChannel(channel))
    return await repo.update(member_id, consents=sorted(int(c) for c in wanted))


async def identity_owner(uow: UnitOfWork, identity: Identity) -> str | None:
    return await MemberRepository(uow.session).identity_owner(identity, for_update=True)


async def bind_identity(uow: UnitOfWork, member_id: str, identity: Identity) -> Member:
    """Bind a channel identity to the member; binding it again is a no-op; an identity of
    another member is refused (FAILED_PRECONDITION) unless the caller merges explicitly."""
    repo = MemberRepository(uow.session)
    await require_usable(repo, member_id, lock=True)
    await bind_identity_to(uow, repo, member_id, identity)
    return await repo.require(member_id)
