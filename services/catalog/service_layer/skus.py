"""Style and SKU use cases: create, change, lifecycle, search."""

from __future__ import annotations

from dataclasses import replace

from omni.catalog.v1 import events_pb2

from libs.errors import AlreadyExists, NotFound, Validator
from libs.pagination import decode_token, encode_token
from libs.unit_of_work import UnitOfWork
from services.catalog import metrics
from services.catalog.adapters.proto import sku_to_proto
from services.catalog.adapters.sku_repository import (
    SkuRepository,
    SkuSearch,
    Style,
)
from services.catalog.adapters.taxonomy_repository import TaxonomyRepository
from services.catalog.domain.skus import (
    MAX_ATTRIBUTE_LENGTH,
    Lifecycle,
    NewSku,
    Sku,
    next_lifecycle,
    validate_attributes,
    validate_code,
    validate_name,
)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


async def create_style(uow: UnitOfWork, style: Style) -> Style:
    """Create a style (SPU); its brand and category, when named, must exist."""
    v = Validator()
    validate_code(v, "style.style_code", style.style_code)
    validate_name(v, "style.name", style.name)
    validate_code(v, "style.brand_code", style.brand_code, required=False)
    validate_code(v, "style.category_code", style.category_code, required=False)
    validate_attributes(v, "style.attributes", style.attributes)
    v.raise_if_any()
    taxonomy = TaxonomyRepository(uow.session)
    if style.brand_code and not await taxonomy.get_brand(style.brand_code):
        raise NotFound(f"brand {style.brand_code} does not exist")
    if style.category_code and not await taxonomy.get_category(style.category_code):
        raise NotFound(f"category {style.category_code} does not exist")
    if not await SkuRepository(uow.session).add_style(style):
        raise AlreadyExists(f"style {style.style_code} already exists")
    return style


async def create_sku(uow: UnitOfWork, new: NewSku) -> Sku:
    """Create a SKU under the unified code and announce it (SkuCreatedEvent) to the platform.

    Rules: every field well formed (see NewSku.validate); code and barcode unique. A style
    that does not exist yet is created with the SKU's name and no brand or category.
    """
    new.validate()
    sku = await SkuRepository(uow.session).add(new)
    uow.emit(events_pb2.SkuCreatedEvent(sku=sku_to_proto(sku)), aggregate_id=sku.sku_code)
    uow.after_commit(metrics.SKUS_CREATED.labels("rpc").inc)
    return sku


async def get_sku(uow: UnitOfWork, sku_code: str) -> Sku:
    sku = await SkuRepository(uow.session).get(sku_code)
    if sku is None:
        raise NotFound(f"SKU {sku_code} does not exist")
    return sku


async def update_sku(
    uow: UnitOfWork,
    sku_code: str,
    *,
    name: str,
    color: str,
    size: str,
    attributes: dict[str, str],
) -> Sku:
    """Replace a SKU's descriptive data; announced as SkuChangedEvent when anything changed."""
    v = Validator()
    validate_code(v, "sku_code", sku_code)
    validate_name(v, "name", name)
    for field, value in (("color", color), ("size", size)):
        v.check(
            len(value) <= MAX_ATTRIBUTE_LENGTH,
            field,
            f"must be at most {MAX_ATTRIBUTE_LENGTH} characters",
        )
    validate_attributes(v, "attributes", attributes)
    v.raise_if_any()
    repo = SkuRepository(uow.session)
    current = await repo.get(sku_code, lock=True)
    if current is None:
        raise NotFound(f"SKU {sku_code} does not exist")
    if (current.name, current.color, current.size, current.attributes) == (
        name,
        color,
        size,
        attributes,
    ):
        return current
    sku = await repo.update(sku_code, name=name, color=color, size=size, attributes=attributes)
    uow.emit(events_pb2.SkuChangedEvent(sku=sku_to_proto(sku)), aggregate_id=sku_code)
    return sku


async def change_lifecycle(uow: UnitOfWork, sku_code: str, target: Lifecycle) -> Sku:
    """Draft → active → discontinued (see domain.skus.next_lifecycle). Activation is announced
    as SkuChangedEvent, discontinuation as SkuDiscontinuedEvent; a repeat changes nothing."""
    v = Validator()
    validate_code(v, "sku_code", sku_code)
    v.raise_if_any()
    repo = SkuRepository(uow.session)
    current = await repo.get(sku_code, lock=True)
    if current is None:
        raise NotFound(f"SKU {sku_code} does not exist")
    if next_lifecycle(current.lifecycle, target) is current.lifecycle:
        return current
    sku = await repo.update(sku_code, lifecycle=target.value)
    event = (
        events_pb2.SkuDiscontinuedEvent(sku=sku_to_proto(sku))
        if target is Lifecycle.DISCONTINUED
        else events_pb2.SkuChangedEvent(sku=sku_to_proto(sku))
    )
    uow.emit(event, aggregate_id=sku_code)
    uow.after_commit(metrics.SKU_LIFECYCLE_CHANGES.labels(target.value).inc)
    return sku


async def search_skus(
    uow: UnitOfWork, criteria: SkuSearch, page_size: int, page_token: str
) -> tuple[list[Sku], str]:
    """One page of SKUs in code order and the token of the next page ('' on the last)."""
    v = Validator()
    v.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"must be 0-{MAX_PAGE_SIZE}")
    v.check(len(criteria.text) <= 200, "text", "must be at most 200 characters")
    v.raise_if_any()
    size = page_size or DEFAULT_PAGE_SIZE
    position = decode_token(page_token, 1)
    after = str(position[0]) if position else ""
    found = await SkuRepository(uow.session).search(
        replace(criteria, page_size=size, after_sku_code=after)
    )
    if len(found) > size:
        return found[:size], encode_token([found[size - 1].sku_code])
    return found, ""
