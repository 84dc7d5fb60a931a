"""The organisation tree and who may see what.

Every unit has a path from its HQ (``/HQ/P/C/S/``); a caller's scope is their unit's path,
and they see a unit exactly when its path starts with it (人员权限管理).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from libs.errors import PermissionDenied, Validator

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class UnitKind(IntEnum):
    """Numbers match omni.distribution.v1.OrgUnitKind."""

    HQ = 1
    PROVINCE = 2
    CITY = 3
    STORE = 4
    DISTRIBUTOR = 5
    FRANCHISEE = 6
    AGENT = 7


DEALER_KINDS = frozenset({UnitKind.DISTRIBUTOR, UnitKind.FRANCHISEE, UnitKind.AGENT})
# Units that hold stock and sell to customers, and so can have guides.
SELLING_KINDS = frozenset({UnitKind.STORE, *DEALER_KINDS})

# Which kinds may sit directly under which (the three management levels, dealers anywhere
# under HQ).
ALLOWED_PARENTS: dict[UnitKind, frozenset[UnitKind]] = {
    UnitKind.PROVINCE: frozenset({UnitKind.HQ}),
    UnitKind.CITY: frozenset({UnitKind.PROVINCE}),
    UnitKind.STORE: frozenset({UnitKind.CITY}),
    UnitKind.DISTRIBUTOR: frozenset({UnitKind.HQ, UnitKind.PROVINCE, UnitKind.CITY}),
    UnitKind.FRANCHISEE: frozenset({UnitKind.HQ, UnitKind.PROVINCE, UnitKind.CITY}),
    UnitKind.AGENT: frozenset({UnitKind.HQ, UnitKind.PROVINCE, UnitKind.CITY}),
}


class StaffRole(IntEnum):
    """Numbers match omni.distribution.v1.StaffRole."""

    GUIDE = 1
    MANAGER = 2


@dataclass(frozen=True)
class Territory:
    """A whole province, or one city of it."""

    province: str
    city: str = ""

    def covers(self, province: str, city: str) -> bool:
        if self.province != province:
            return False
        return not self.city or self.city == city


def in_territory(territories: Iterable[Territory], province: str, city: str) -> bool:
    return any(t.covers(province, city) for t in territories)


@dataclass(frozen=True)
class Caller:
    """Who a call is made for: a staff member and the path of their unit, or the platform
    administrator, whose scope is every tree."""

    staff_id: str
    scope_path: str
    is_admin: bool = False

    def can_see(self, path: str) -> bool:
        return self.is_admin or path.startswith(self.scope_path)

    def require(self, path: str, what: str) -> None:
        if not self.can_see(path):
            raise PermissionDenied(f"{what} is outside the scope of staff {self.staff_id}")

    def require_hq(self, hq_id: str) -> None:
        """Brand-wide settings (rules, minimum prices, closing periods) belong to HQ staff."""
        if not self.is_admin and self.scope_path != child_path("/", hq_id):
            raise PermissionDenied(f"only staff of HQ {hq_id} may do this")


def child_path(parent_path: str, unit_id: str) -> str:
    return f"{parent_path}{unit_id}/"


def hq_of(path: str) -> str:
    return path.strip("/").split("/")[0]


@dataclass(frozen=True)
class OrgUnit:
    unit_id: str
    kind: UnitKind
    name: str
    parent_id: str
    path: str
    hq_id: str
    province: str
    city: str
    location_id: str
    territories: tuple[Territory, ...]

    @property
    def is_dealer(self) -> bool:
        return self.kind in DEALER_KINDS


@dataclass(frozen=True)
class Staff:
    staff_id: str
    unit_id: str
    name: str
    role: StaffRole
    is_virtual: bool


def validate_new_unit(
    *,
    unit_id: str,
    kind: int,
    name: str,
    parent: OrgUnit | None,
    parent_id: str,
    province: str,
    city: str,
    territories: tuple[Territory, ...],
) -> None:
    """Names every bad field of a new unit at once (parent existence is checked before)."""
    check = Validator()
    check.check(bool(ID_PATTERN.match(unit_id)), "unit_id", "must be 1-64 letters, digits, _.:-")
    check.check(kind in UnitKind.__members__.values(), "kind", "must be a known unit kind")
    check.check(bool(name.strip()), "name", "is required")
    if kind == UnitKind.HQ:
        check.check(not parent_id, "parent_id", "an HQ has no parent")
    elif kind in UnitKind.__members__.values():
        if not parent_id:
            check.add("parent_id", "is required below HQ")
        elif parent is not None and parent.kind not in ALLOWED_PARENTS[UnitKind(kind)]:
            allowed = ", ".join(k.name for k in sorted(ALLOWED_PARENTS[UnitKind(kind)]))
            check.add("parent_id", f"a {UnitKind(kind).name} must sit under {allowed}")
    if kind == UnitKind.PROVINCE:
        check.check(bool(province.strip()), "province", "is required for a province")
    if kind == UnitKind.CITY:
        check.check(bool(city.strip()), "city", "is required for a city")
    if kind in DEALER_KINDS:
        check.check(bool(territories), "territories", "a dealer needs a territory")
    for index, territory in enumerate(territories):
        check.check(
            bool(territory.province.strip()),
            f"territories[{index}].province",
            "is required",
        )
    check.raise_if_any()
