"""Reading and writing the distribution tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.distribution.adapters.tables import (
    closed_periods,
    commission_rules,
    member_owners,
    minimum_prices,
    org_units,
    staff,
)
from services.distribution.domain.commission_rules import Flow, Role, Rule
from services.distribution.domain.organisation import (
    OrgUnit,
    Staff,
    StaffRole,
    Territory,
    UnitKind,
)

# Namespace of the advisory locks that keep closing a period and booking into it apart.
PERIOD_LOCK_NAMESPACE = 0x64697374
# Advisory locks keyed by hashtext(key): one version of an (HQ, flow, role) rule at a time.
_RULE_LOCK = "SELECT pg_advisory_xact_lock(hashtext(:key))"


def like_prefix(path: str) -> str:
    """A LIKE pattern matching every path that starts with ``path``."""
    return path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def territories_to_json(territories: Iterable[Territory]) -> list[dict[str, str]]:
    return [{"province": t.province, "city": t.city} for t in territories]


def territories_from_json(raw: Sequence[dict[str, str]]) -> tuple[Territory, ...]:
    return tuple(Territory(t["province"], t.get("city", "")) for t in raw)


def unit_from_row(row: Any) -> OrgUnit:
    m = row._mapping
    return OrgUnit(
        unit_id=m["unit_id"],
        kind=UnitKind(m["kind"]),
        name=m["name"],
        parent_id=m["parent_id"] or "",
        path=m["path"],
        hq_id=m["hq_id"],
        province=m["province"],
        city=m["city"],
        location_id=m["location_id"] or "",
        territories=territories_from_json(m["territories"]),
    )


def staff_from_row(row: Any) -> Staff:
    m = row._mapping
    return Staff(m["staff_id"], m["unit_id"], m["name"], StaffRole(m["role"]), m["is_virtual"])


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unit(self, unit_id: str) -> OrgUnit | None:
        row = (
            await self.session.execute(sa.select(org_units).where(org_units.c.unit_id == unit_id))
        ).first()
        return unit_from_row(row) if row else None

    async def units(self, unit_ids: Iterable[str]) -> dict[str, OrgUnit]:
        wanted = sorted({u for u in unit_ids if u})
        if not wanted:
            return {}
        rows = await self.session.execute(
            sa.select(org_units).where(org_units.c.unit_id.in_(wanted))
        )
        return {u.unit_id: u for u in map(unit_from_row, rows)}

    async def units_by_location(self, location_ids: Iterable[str]) -> dict[str, OrgUnit]:
        wanted = sorted({loc for loc in location_ids if loc})
        if not wanted:
            return {}
        rows = await self.session.execute(
            sa.select(org_units).where(org_units.c.location_id.in_(wanted))
        )
        return {u.location_id: u for u in map(unit_from_row, rows)}

    async def units_named_or_located(
        self, unit_ids: Iterable[str], location_ids: Iterable[str]
    ) -> tuple[dict[str, OrgUnit], dict[str, OrgUnit]]:
        """Units by id and units by inventory location id, in one round trip."""
        ids = sorted({u for u in unit_ids if u})
        locations = sorted({loc for loc in location_ids if loc})
        if not ids and not locations:
            return {}, {}
        rows = await self.session.execute(
            sa.select(org_units).where(
                sa.or_(org_units.c.unit_id.in_(ids), org_units.c.location_id.in_(locations))
            )
        )
        found = [unit_from_row(r) for r in rows]
        return (
            {u.unit_id: u for u in found if u.unit_id in ids},
            {u.location_id: u for u in found if u.location_id and u.location_id in locations},
        )

    async def staff_with_units(self, staff_ids: Iterable[str]) -> dict[str, tuple[Staff, OrgUnit]]:
        wanted = sorted({s for s in staff_ids if s})
        if not wanted:
            return {}
        rows = await self.session.execute(
            sa.select(
                org_units,
                staff.c.staff_id,
                staff.c.role.label("staff_role"),
                staff.c.is_virtual,
                staff.c.name.label("staff_name"),
            )
            .select_from(staff.join(org_units, org_units.c.unit_id == staff.c.unit_id))
            .where(staff.c.staff_id.in_(wanted))
        )
        return {
            r.staff_id: (
                Staff(r.staff_id, r.unit_id, r.staff_name, StaffRole(r.staff_role), r.is_virtual),
                unit_from_row(r),
            )
            for r in rows
        }

    async def add_unit(self, unit: OrgUnit) -> bool:
        """Insert a unit; False when its id or location id is already taken."""
        inserted = await self.session.execute(
            insert(org_units)
            .values(
                unit_id=unit.unit_id,
                kind=int(unit.kind),
                name=unit.name,
                parent_id=unit.parent_id or None,
                path=unit.path,
                hq_id=unit.hq_id,
                province=unit.province,
                city=unit.city,
                location_id=unit.location_id or None,
                territories=territories_to_json(unit.territories),
            )
            .on_conflict_do_nothing()
            .returning(org_units.c.unit_id)
        )
        return inserted.first() is not None

    async def child_units(self, parent_id: str, after: str, limit: int) -> list[OrgUnit]:
        rows = await self.session.execute(
            sa.select(org_units)
            .where(org_units.c.parent_id == parent_id, org_units.c.unit_id > after)
            .order_by(org_units.c.unit_id)
            .limit(limit)
        )
        return [unit_from_row(r) for r in rows]

    async def set_territories(self, unit_id: str, territories: Sequence[Territory]) -> None:
        await self.session.execute(
            org_units.update()
            .where(org_units.c.unit_id == unit_id)
            .values(territories=territories_to_json(territories))
        )

    async def staff(self, staff_id: str) -> Staff | None:
        row = (
            await self.session.execute(sa.select(staff).where(staff.c.staff_id == staff_id))
        ).first()
        return staff_from_row(row) if row else None

    async def add_staff(self, member: Staff) -> bool:
        inserted = await self.session.execute(
            insert(staff)
            .values(
                staff_id=member.staff_id,
                unit_id=member.unit_id,
                name=member.name,
                role=int(member.role),
                is_virtual=member.is_virtual,
            )
            .on_conflict_do_nothing()
            .returning(staff.c.staff_id)
        )
        return inserted.first() is not None

    async def member_owner(self, member_id: str) -> tuple[str, str] | None:
        row = (
            await self.session.execute(
                sa.select(member_owners.c.guide_staff_id, member_owners.c.store_id).where(
                    member_owners.c.member_id == member_id
                )
            )
        ).first()
        return (row.guide_staff_id, row.store_id) if row else None

    async def set_member_owner(
        self, member_id: str, guide_staff_id: str, store_id: str, changed_at: datetime
    ) -> None:
        """Upsert the owner, unless a newer change is already recorded (events of one member
        can arrive from two event types out of order)."""
        statement = insert(member_owners).values(
            member_id=member_id,
            guide_staff_id=guide_staff_id,
            store_id=store_id,
            changed_at=changed_at,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[member_owners.c.member_id],
                set_={
                    "guide_staff_id": statement.excluded.guide_staff_id,
                    "store_id": statement.excluded.store_id,
                    "changed_at": statement.excluded.changed_at,
                },
                where=member_owners.c.changed_at <= statement.excluded.changed_at,
            )
        )

    async def rules(self, hq_id: str) -> tuple[list[Rule], dict[tuple[int, int, int], str]]:
        """Every version of every rule of an HQ, and the currency of each (flow, role, version)."""
        rows = (
            await self.session.execute(
                sa.select(commission_rules)
                .where(commission_rules.c.hq_id == hq_id)
                .order_by(
                    commission_rules.c.flow, commission_rules.c.role, commission_rules.c.version
                )
            )
        ).all()
        found = [
            Rule(
                flow=Flow(r.flow),
                role=Role(r.role),
                rate_bp=r.rate_bp,
                fixed_minor=r.fixed_minor,
                effective_from=r.effective_from,
                version=r.version,
                saved_shipping_minor=r.saved_shipping_minor,
                currency=r.currency,
            )
            for r in rows
        ]
        return found, {(r.flow, r.role, r.version): r.currency for r in rows}

    async def next_rule_version(self, hq_id: str, flow: int, role: int) -> int:
        """The version a new rule of (flow, role) gets; concurrent versions of one rule are
        serialised (a transaction lock), so version numbers never collide."""
        await self.session.execute(sa.text(_RULE_LOCK), {"key": f"rule:{hq_id}:{flow}:{role}"})
        latest = (
            await self.session.execute(
                sa.select(sa.func.max(commission_rules.c.version)).where(
                    commission_rules.c.hq_id == hq_id,
                    commission_rules.c.flow == flow,
                    commission_rules.c.role == role,
                )
            )
        ).scalar()
        return int(latest or 0) + 1

    async def add_rule(self, hq_id: str, rule: Rule) -> None:
        await self.session.execute(
            commission_rules.insert().values(
                hq_id=hq_id,
                flow=int(rule.flow),
                role=int(rule.role),
                version=rule.version,
                rate_bp=rule.rate_bp,
                fixed_minor=rule.fixed_minor,
                currency=rule.currency,
                saved_shipping_minor=rule.saved_shipping_minor,
                effective_from=rule.effective_from,
            )
        )

    async def set_minimum_price(
        self, hq_id: str, sku_code: str, currency: str, minimum_minor: int
    ) -> None:
        statement = insert(minimum_prices).values(
            hq_id=hq_id, sku_code=sku_code, currency=currency, minimum_minor=minimum_minor
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    minimum_prices.c.hq_id,
                    minimum_prices.c.sku_code,
                    minimum_prices.c.currency,
                ],
                set_={"minimum_minor": statement.excluded.minimum_minor},
            )
        )

    async def minimum_prices(
        self, hq_id: str, currency: str, skus: Iterable[str]
    ) -> dict[str, int]:
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        rows = await self.session.execute(
            sa.select(minimum_prices.c.sku_code, minimum_prices.c.minimum_minor).where(
                minimum_prices.c.hq_id == hq_id,
                minimum_prices.c.currency == currency,
                minimum_prices.c.sku_code.in_(wanted),
            )
        )
        return {r.sku_code: r.minimum_minor for r in rows}

    async def lock_periods_shared(self, hq_id: str) -> None:
        """Booking entries excludes closing a period of the same HQ, not other bookings."""
        await self.session.execute(
            sa.text("SELECT pg_advisory_xact_lock_shared(:ns, hashtext(:hq))"),
            {"ns": PERIOD_LOCK_NAMESPACE, "hq": hq_id},
        )

    async def lock_periods_exclusive(self, hq_id: str) -> None:
        await self.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:hq))"),
            {"ns": PERIOD_LOCK_NAMESPACE, "hq": hq_id},
        )

    async def closed_periods(self, hq_id: str) -> set[str]:
        rows = await self.session.execute(
            sa.select(closed_periods.c.period).where(closed_periods.c.hq_id == hq_id)
        )
        return {r.period for r in rows}
