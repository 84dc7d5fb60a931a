"""Members, their sign-up source, owner (归属), identities and consents: what makes them
well formed. Enum values are the protobuf numbers of omni.member.v1."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from libs.errors import InvalidArgument, Validator
from services.member.domain.phones import normalise_phone

MAX_NAME_LENGTH = 100
MAX_REASON_LENGTH = 500
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
MAX_EXTERNAL_ID_LENGTH = 128


class SignUpSource(IntEnum):
    SELF = 1
    GUIDE_ASSISTED = 2
    DISTRIBUTOR_IMPORT = 3
    VIRTUAL_GUIDE = 4


class IdentityKind(IntEnum):
    WECHAT_OPENID = 1
    MARKETPLACE_NICK = 2
    DISTRIBUTOR_CUSTOMER_ID = 3
    MALL_ACCOUNT = 4


class ContactChannel(IntEnum):
    SMS = 1
    EMAIL = 2
    WECHAT = 3


class MemberState(IntEnum):
    ACTIVE = 1
    MERGED = 2


GUIDED_SOURCES = (SignUpSource.GUIDE_ASSISTED, SignUpSource.VIRTUAL_GUIDE)


def _check_id(v: Validator, value: str, field_name: str, *, required: bool) -> None:
    if not value:
        v.check(not required, field_name, "is required")
        return
    v.check(
        bool(ID_PATTERN.match(value)),
        field_name,
        "must be 1-64 of letters, digits, '.', '_', ':', '@', '-'",
    )


@dataclass(frozen=True)
class Identity:
    kind: IdentityKind
    namespace: str
    external_id: str


def validate_identity(
    v: Validator, kind: int, namespace: str, external_id: str, prefix: str
) -> Identity | None:
    """Adds violations under ``prefix`` (e.g. "identity"); returns the identity when valid."""
    before = len(v.violations)
    v.check(kind in IdentityKind._value2member_map_, f"{prefix}.kind", "must be a known kind")
    _check_id(v, namespace, f"{prefix}.namespace", required=True)
    v.check(bool(external_id.strip()), f"{prefix}.external_id", "is required")
    v.check(
        len(external_id) <= MAX_EXTERNAL_ID_LENGTH,
        f"{prefix}.external_id",
        f"must be at most {MAX_EXTERNAL_ID_LENGTH} characters",
    )
    if len(v.violations) > before:
        return None
    return Identity(IdentityKind(kind), namespace, external_id.strip())


@dataclass(frozen=True)
class NewMember:
    """A sign-up, validated: phone normalised, owner set by the source's rule."""

    phone: str
    name: str
    source: SignUpSource
    owner_guide_staff_id: str
    owner_store_id: str
    distributor_id: str = ""
    consents: frozenset[ContactChannel] = frozenset()
    identities: tuple[Identity, ...] = field(default=())


def validate_sign_up(
    v: Validator,
    *,
    phone: str,
    name: str,
    source: int,
    guide_staff_id: str,
    store_id: str,
    consents: list[int],
    distributor_id: str = "",
    identities: tuple[Identity, ...] = (),
) -> NewMember | None:
    """Rules: a valid phone; a known source; guide-assisted and virtual-guide sign-ups name
    the guide (who becomes the owner, 归属) — a guide-assisted one also the store; a self
    sign-up has no owner until one is assigned; a distributor import names the distributor.
    Returns None (with violations in ``v``) when the sign-up is malformed."""
    before = len(v.violations)
    normalised = ""
    try:
        normalised = normalise_phone(phone)
    except InvalidArgument as exc:
        v.violations.extend(exc.violations)
    v.check(len(name) <= MAX_NAME_LENGTH, "name", f"must be at most {MAX_NAME_LENGTH} characters")
    v.check(source in SignUpSource._value2member_map_, "source", "must be a known sign-up source")
    if source in GUIDED_SOURCES:
        _check_id(v, guide_staff_id, "guide_staff_id", required=True)
    elif source == SignUpSource.SELF:
        v.check(not guide_staff_id, "guide_staff_id", "only a guided sign-up has a guide")
    else:
        _check_id(v, guide_staff_id, "guide_staff_id", required=False)
    _check_id(v, store_id, "store_id", required=source == SignUpSource.GUIDE_ASSISTED)
    if source == SignUpSource.DISTRIBUTOR_IMPORT:
        _check_id(v, distributor_id, "distributor_id", required=True)
    for i, c in enumerate(consents):
        v.check(c in ContactChannel._value2member_map_, f"consents[{i}]", "must be a known channel")
    if len(v.violations) > before:
        return None
    return NewMember(
        phone=normalised,
        name=name.strip(),
        source=SignUpSource(source),
        owner_guide_staff_id=guide_staff_id,
        owner_store_id=store_id,
        distributor_id=distributor_id,
        consents=frozenset(ContactChannel(c) for c in consents),
        identities=identities,
    )


def validate_transfer(v: Validator, guide_staff_id: str, store_id: str, reason: str) -> None:
    """An ownership transfer names the new guide and says why (e.g. the guide left)."""
    _check_id(v, guide_staff_id, "owner_guide_staff_id", required=True)
    _check_id(v, store_id, "owner_store_id", required=False)
    v.check(bool(reason.strip()), "reason", "is required")
    v.check(len(reason) <= MAX_REASON_LENGTH, "reason", f"at most {MAX_REASON_LENGTH} characters")


@dataclass(frozen=True)
class BoundIdentity:
    kind: IdentityKind
    namespace: str
    external_id: str
    bound_at: datetime


@dataclass(frozen=True)
class Member:
    member_id: str
    phone: str
    name: str
    source: SignUpSource
    distributor_id: str
    owner_guide_staff_id: str
    owner_store_id: str
    tier: int
    points_balance: int
    stored_value_minor: int
    lifetime_spend_minor: int
    order_count: int
    last_purchase_at: datetime | None
    consents: frozenset[ContactChannel]
    state: MemberState
    merged_into: str | None
    created_at: datetime
    identities: tuple[BoundIdentity, ...] = ()

    @property
    def active(self) -> bool:
        return self.state == MemberState.ACTIVE
