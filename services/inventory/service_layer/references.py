"""Checks that the locations and SKUs a command names exist, before anything is written."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from libs.errors import Validator
from libs.unit_of_work import UnitOfWork
from services.inventory.adapters.location_repository import location_from_row
from services.inventory.domain.locations import Location


async def check_references(
    uow: UnitOfWork,
    *,
    locations: Sequence[tuple[str, str]] = (),
    skus: Sequence[tuple[str, str]] = (),
) -> dict[str, Location]:
    """Raises InvalidArgument naming each (field, id) that is empty, unknown or inactive.

    Inventory keeps stock only for SKUs the catalog announced (tracked SKUs) and only at
    registered, active locations. Returns the named locations by id."""
    location_ids = sorted({loc for _, loc in locations if loc})
    sku_codes = sorted({sku for _, sku in skus if sku})
    # One round trip for both look-ups: this runs at the start of every stock command.
    rows = await uow.session.execute(
        sa.text(
            "SELECT l.*, NULL AS tracked_sku FROM locations l WHERE l.location_id = ANY(:locs) "
            "UNION ALL SELECT l.*, t.sku_code FROM tracked_skus t "
            "LEFT JOIN locations l ON false WHERE t.sku_code = ANY(:skus)"
        ),
        {"locs": location_ids, "skus": sku_codes},
    )
    found: dict[str, Location] = {}
    tracked: set[str] = set()
    for row in rows:
        m = row._mapping
        if m["tracked_sku"] is not None:
            tracked.add(m["tracked_sku"])
        else:
            found[m["location_id"]] = location_from_row(m)
    v = Validator()
    for field, location_id in locations:
        if not location_id:
            v.add(field, "is required")
        elif location_id not in found:
            v.add(field, f"location {location_id} does not exist")
        elif not found[location_id].active:
            v.add(field, f"location {location_id} is not active")
    for field, sku_code in skus:
        if not sku_code:
            v.add(field, "is required")
        elif sku_code not in tracked:
            v.add(field, f"SKU {sku_code} is not tracked by inventory")
    v.raise_if_any()
    return found
