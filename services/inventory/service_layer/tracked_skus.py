"""Use cases about which SKUs inventory keeps stock for."""

from __future__ import annotations

from libs.errors import InvalidArgument, NotFound
from libs.unit_of_work import UnitOfWork
from services.inventory.adapters.tracked_sku_repository import TrackedSkuRepository
from services.inventory.domain.tracked_skus import TrackedSku


async def track_sku(uow: UnitOfWork, sku_code: str, style_code: str, barcode: str) -> bool:
    """Start keeping stock for a SKU the catalog created. Tracking twice changes nothing."""
    if not sku_code:
        raise InvalidArgument.field("sku.sku_code", "is required")
    return await TrackedSkuRepository(uow.session).track(sku_code, style_code, barcode)


async def get_tracked_sku(uow: UnitOfWork, sku_code: str) -> TrackedSku:
    if not sku_code:
        raise InvalidArgument.field("sku_code", "is required")
    found = await TrackedSkuRepository(uow.session).get(sku_code)
    if found is None:
        raise NotFound(f"SKU {sku_code} is not tracked by inventory")
    return found
