"""Locations in the inventory database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.inventory.adapters.tables import locations
from services.inventory.domain.locations import Capability, Location, LocationType, OpeningHours


def location_from_row(m: Mapping[Any, Any]) -> Location:
    return Location(
        location_id=m["location_id"],
        name=m["name"],
        type=LocationType(m["type"]),
        province=m["province"],
        city=m["city"],
        latitude=m["latitude"],
        longitude=m["longitude"],
        time_zone=m["time_zone"],
        opening_hours=tuple(
            OpeningHours(h["day"], h["open"], h["close"]) for h in m["opening_hours"]
        ),
        capabilities=frozenset(Capability(c) for c in m["capabilities"]),
        channels=tuple(m["channels"]),
        default_safety_stock=m["default_safety_stock"],
        active=m["active"],
        created_at=m["created_at"],
    )


def _columns(location: Location) -> dict[str, Any]:
    assert location.type is not None
    return {
        "name": location.name,
        "type": location.type.value,
        "province": location.province,
        "city": location.city,
        "latitude": location.latitude,
        "longitude": location.longitude,
        "time_zone": location.time_zone,
        "opening_hours": [
            {"day": h.day_of_week, "open": h.open_minute, "close": h.close_minute}
            for h in location.opening_hours
        ],
        "capabilities": sorted(c.value for c in location.capabilities),
        "channels": list(location.channels),
        "default_safety_stock": location.default_safety_stock,
        "active": location.active,
    }


class LocationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, location: Location) -> Location | None:
        """Insert a new location; None when the id is taken."""
        assert location.type is not None
        row = (
            await self.session.execute(
                insert(locations)
                .values(location_id=location.location_id, **_columns(location))
                .on_conflict_do_nothing()
                .returning(*locations.c)
            )
        ).first()
        return None if row is None else location_from_row(row._mapping)

    async def replace(self, location: Location, *, keep_active: bool = False) -> Location | None:
        """Overwrite a location's details (all but ``active`` when ``keep_active``); None
        when it does not exist."""
        assert location.type is not None
        values = _columns(location)
        if keep_active:
            del values["active"]
        row = (
            await self.session.execute(
                locations.update()
                .where(locations.c.location_id == location.location_id)
                .values(**values)
                .returning(*locations.c)
            )
        ).first()
        return None if row is None else location_from_row(row._mapping)

    async def get(self, location_id: str) -> Location | None:
        row = (
            await self.session.execute(
                sa.select(locations).where(locations.c.location_id == location_id)
            )
        ).first()
        return None if row is None else location_from_row(row._mapping)

    async def get_many(self, location_ids: Iterable[str]) -> dict[str, Location]:
        ids = sorted(set(location_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            sa.select(locations).where(locations.c.location_id.in_(ids))
        )
        return {r.location_id: location_from_row(r._mapping) for r in rows}

    async def version(self) -> int:
        """Moves whenever any location changes (migration 0005's trigger)."""
        return int(
            (
                await self.session.execute(sa.text("SELECT version FROM locations_version"))
            ).scalar_one()
        )

    async def page(self, after_id: str, limit: int, channel: str) -> list[Location]:
        query = sa.select(locations).where(locations.c.location_id > after_id)
        if channel:
            query = query.where(locations.c.channels.any_() == channel)
        rows = await self.session.execute(query.order_by(locations.c.location_id).limit(limit))
        return [location_from_row(r._mapping) for r in rows]
