"""Organisation use cases: units, territories, staff and guide codes — all scoped."""

from __future__ import annotations

from dataclasses import dataclass

from libs.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Validator
from libs.pagination import decode_token, encode_token
from libs.unit_of_work import UnitOfWork
from services.distribution.adapters.repository import Repository
from services.distribution.domain import guide_codes
from services.distribution.domain.organisation import (
    DEALER_KINDS,
    ID_PATTERN,
    SELLING_KINDS,
    Caller,
    OrgUnit,
    Staff,
    StaffRole,
    Territory,
    UnitKind,
    child_path,
    validate_new_unit,
)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class NewUnit:
    unit_id: str
    kind: int
    name: str
    parent_id: str
    province: str
    city: str
    location_id: str
    territories: tuple[Territory, ...]


async def visible_unit(repo: Repository, caller: Caller, unit_id: str, field: str) -> OrgUnit:
    """A unit the caller may see: NOT_FOUND if missing, PERMISSION_DENIED if out of scope."""
    if not unit_id:
        raise InvalidArgument.field(field, "is required")
    unit = await repo.unit(unit_id)
    if unit is None:
        raise NotFound(
            f"org unit {unit_id} does not exist",
            field=field,
            resource_type="org_unit",
            resource_name=unit_id,
        )
    caller.require(unit.path, f"org unit {unit_id}")
    return unit


async def create_unit(uow: UnitOfWork, caller: Caller, new: NewUnit) -> OrgUnit:
    """A unit goes under a parent in the caller's scope, in the shape HQ → province → city →
    store, dealers anywhere below HQ; it inherits its parents' province and city. Only the
    platform administrator creates an HQ (the root of a brand's tree)."""
    validate_new_unit(
        unit_id=new.unit_id,
        kind=new.kind,
        name=new.name,
        parent=None,
        parent_id=new.parent_id,
        province=new.province,
        city=new.city,
        territories=new.territories,
    )
    repo = Repository(uow.session)
    kind = UnitKind(new.kind)
    parent: OrgUnit | None = None
    if kind == UnitKind.HQ:
        if not caller.is_admin:
            raise PermissionDenied("only the platform administrator creates an HQ")
        path, hq_id, province, city = child_path("/", new.unit_id), new.unit_id, "", ""
    else:
        parent = await visible_unit(repo, caller, new.parent_id, "parent_id")
        validate_new_unit(
            unit_id=new.unit_id,
            kind=new.kind,
            name=new.name,
            parent=parent,
            parent_id=new.parent_id,
            province=new.province,
            city=new.city,
            territories=new.territories,
        )
        path, hq_id = child_path(parent.path, new.unit_id), parent.hq_id
        province = new.province.strip() if kind == UnitKind.PROVINCE else parent.province
        city = new.city.strip() if kind == UnitKind.CITY else parent.city
    unit = OrgUnit(
        unit_id=new.unit_id,
        kind=kind,
        name=new.name.strip(),
        parent_id=new.parent_id if parent else "",
        path=path,
        hq_id=hq_id,
        province=province,
        city=city,
        location_id=new.location_id.strip(),
        territories=new.territories if kind in DEALER_KINDS else (),
    )
    if not await repo.add_unit(unit):
        if await repo.unit(unit.unit_id) is not None:
            raise AlreadyExists(f"org unit {unit.unit_id} already exists")
        raise AlreadyExists(f"location {unit.location_id} already belongs to another unit")
    return unit


async def get_unit(uow: UnitOfWork, caller: Caller, unit_id: str) -> OrgUnit:
    return await visible_unit(Repository(uow.session), caller, unit_id, "unit_id")


async def list_child_units(
    uow: UnitOfWork, caller: Caller, parent_id: str, page_size: int, page_token: str
) -> tuple[list[OrgUnit], str]:
    """The direct children of a unit in id order; the page token holds the last id returned."""
    check = Validator()
    check.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"must be 0-{MAX_PAGE_SIZE}")
    check.raise_if_any()
    after = decode_token(page_token, 1, (str,))
    repo = Repository(uow.session)
    await visible_unit(repo, caller, parent_id, "parent_id")
    size = page_size or DEFAULT_PAGE_SIZE
    found = await repo.child_units(parent_id, str(after[0]) if after else "", size + 1)
    if len(found) > size:
        return found[:size], encode_token([found[size - 1].unit_id])
    return found, ""


async def set_dealer_territory(
    uow: UnitOfWork, caller: Caller, unit_id: str, territories: tuple[Territory, ...]
) -> OrgUnit:
    check = Validator()
    check.check(bool(territories), "territories", "a dealer needs a territory")
    for index, territory in enumerate(territories):
        check.check(bool(territory.province), f"territories[{index}].province", "is required")
    check.raise_if_any()
    repo = Repository(uow.session)
    unit = await visible_unit(repo, caller, unit_id, "unit_id")
    if unit.kind not in DEALER_KINDS:
        raise InvalidArgument.field("unit_id", "only dealers have a territory")
    await repo.set_territories(unit_id, territories)
    return OrgUnit(**{**unit.__dict__, "territories": territories})


async def create_staff(uow: UnitOfWork, caller: Caller, member: Staff) -> Staff:
    """Staff belong to a unit in the caller's scope; a (human) guide belongs to a store or a
    dealer, a virtual guide may sit at any level."""
    check = Validator()
    check.check(
        bool(ID_PATTERN.match(member.staff_id)), "staff_id", "must be 1-64 letters, digits, _.:-"
    )
    check.check(bool(member.name.strip()), "name", "is required")
    check.check(member.role in StaffRole.__members__.values(), "role", "must be GUIDE or MANAGER")
    check.check(bool(member.unit_id), "unit_id", "is required")
    check.raise_if_any()
    repo = Repository(uow.session)
    unit = await visible_unit(repo, caller, member.unit_id, "unit_id")
    if member.role == StaffRole.GUIDE and not member.is_virtual and unit.kind not in SELLING_KINDS:
        raise InvalidArgument.field("unit_id", "a guide belongs to a store or a dealer")
    member = Staff(
        member.staff_id, member.unit_id, member.name.strip(), member.role, member.is_virtual
    )
    if not await repo.add_staff(member):
        raise AlreadyExists(f"staff {member.staff_id} already exists")
    return member


async def visible_staff(repo: Repository, caller: Caller, staff_id: str) -> Staff:
    if not staff_id:
        raise InvalidArgument.field("staff_id", "is required")
    member = await repo.staff(staff_id)
    if member is None:
        raise NotFound(
            f"staff {staff_id} does not exist",
            field="staff_id",
            resource_type="staff",
            resource_name=staff_id,
        )
    unit = await repo.unit(member.unit_id)
    caller.require(unit.path if unit else "", f"staff {staff_id}")
    return member


async def get_staff(uow: UnitOfWork, caller: Caller, staff_id: str) -> Staff:
    return await visible_staff(Repository(uow.session), caller, staff_id)


async def issue_guide_code(uow: UnitOfWork, caller: Caller, staff_id: str, key: bytes) -> str:
    """The signed code a guide's showroom link or QR code carries."""
    member = await visible_staff(Repository(uow.session), caller, staff_id)
    if member.role != StaffRole.GUIDE:
        raise InvalidArgument.field("staff_id", "only guides have showroom links")
    return guide_codes.issue(key, member.staff_id)
