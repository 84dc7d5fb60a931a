"""Location use cases: register, look up, list."""

from __future__ import annotations

from dataclasses import replace

from libs.errors import AlreadyExists, NotFound
from libs.unit_of_work import UnitOfWork
from services.inventory.adapters.location_repository import LocationRepository
from services.inventory.domain.locations import TYPE_DEFAULT_SAFETY_STOCK, Location


async def create_location(
    uow: UnitOfWork, location: Location, *, use_type_default_safety_stock: bool
) -> Location:
    """Register a place that holds stock. Its safety stock default comes from its type when
    asked (stores keep the largest buffer); ids are unique."""
    if use_type_default_safety_stock and location.type is not None:
        location = replace(location, default_safety_stock=TYPE_DEFAULT_SAFETY_STOCK[location.type])
    location.validate()
    created = await LocationRepository(uow.session).add(location)
    if created is None:
        raise AlreadyExists(f"location {location.location_id} already exists")
    return created


async def update_location(
    uow: UnitOfWork, location: Location, *, keep_active: bool = False
) -> Location:
    """Replace a location's details; with ``keep_active`` (the caller did not say) it stays
    as active or inactive as it was. Deactivating takes it out of ATP, nearest stock and new
    reservations at once; holds already there stay until confirmed, released or expired."""
    location.validate()
    updated = await LocationRepository(uow.session).replace(location, keep_active=keep_active)
    if updated is None:
        raise NotFound(f"location {location.location_id} does not exist")
    return updated


async def get_location(uow: UnitOfWork, location_id: str) -> Location:
    found = await LocationRepository(uow.session).get(location_id)
    if found is None:
        raise NotFound(f"location {location_id} does not exist")
    return found


async def list_locations(
    uow: UnitOfWork, after_id: str, page_size: int, channel: str
) -> tuple[list[Location], str, int]:
    """A page of locations by id, the last id when more may follow, and the locations'
    version (read in the same transaction as the page)."""
    repo = LocationRepository(uow.session)
    version = await repo.version()
    page = await repo.page(after_id, page_size + 1, channel)
    more = len(page) > page_size
    page = page[:page_size]
    return page, (page[-1].location_id if more and page else ""), version
