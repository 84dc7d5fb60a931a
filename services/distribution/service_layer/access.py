"""Who is calling, and the service's own configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from libs.errors import PermissionDenied
from services.distribution.adapters.repository import Repository
from services.distribution.domain.organisation import Caller

# Local defaults only; production sets both through the environment.
DEFAULT_LINK_KEY = "omni-local-showroom-link-key"
DEFAULT_ADMIN_STAFF_ID = "platform-admin"


@dataclass(frozen=True)
class DistributionConfig:
    """OMNI_DISTRIBUTION_LINK_KEY signs showroom-link guide codes;
    OMNI_DISTRIBUTION_ADMIN_STAFF_ID is the platform administrator (creates HQs, sees all)."""

    link_key: bytes
    admin_staff_id: str

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> DistributionConfig:
        return cls(
            link_key=(extra.get("OMNI_DISTRIBUTION_LINK_KEY") or DEFAULT_LINK_KEY).encode(),
            admin_staff_id=extra.get("OMNI_DISTRIBUTION_ADMIN_STAFF_ID") or DEFAULT_ADMIN_STAFF_ID,
        )


async def load_caller(repo: Repository, staff_id: str, config: DistributionConfig) -> Caller:
    """The caller's scope: the path of their unit (everything at or below it)."""
    if not staff_id:
        raise PermissionDenied("the call names no caller (metadata x-omni-staff-id)")
    if staff_id == config.admin_staff_id:
        return Caller(staff_id, "/", is_admin=True)
    member = await repo.staff(staff_id)
    if member is None:
        raise PermissionDenied(f"caller {staff_id} is not a known staff member")
    unit = await repo.unit(member.unit_id)
    if unit is None:  # pragma: no cover - staff rows reference units by foreign key
        raise PermissionDenied(f"caller {staff_id} has no unit")
    return Caller(staff_id, unit.path)
