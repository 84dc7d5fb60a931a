"""Brand and category-tree use cases."""

from __future__ import annotations

from omni.catalog.v1 import catalog_pb2, events_pb2

from libs.errors import AlreadyExists, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.catalog.adapters.taxonomy_repository import Brand, Category, TaxonomyRepository
from services.catalog.domain.categories import check_move
from services.catalog.domain.skus import validate_code, validate_name


async def create_brand(uow: UnitOfWork, brand: Brand) -> Brand:
    v = Validator()
    validate_code(v, "brand.brand_code", brand.brand_code)
    validate_name(v, "brand.name", brand.name)
    v.raise_if_any()
    if not await TaxonomyRepository(uow.session).add_brand(brand):
        raise AlreadyExists(f"brand {brand.brand_code} already exists")
    return brand


async def update_brand_policy(
    uow: UnitOfWork, brand_code: str, *, same_price: bool | None, online_only: bool | None
) -> Brand:
    """Turn the brand's same-price-online-and-offline and online-only policies on or off; a
    policy given as None keeps its value.

    Turning same-price on needs no clean-up: from then on channel rules are ignored when
    resolving (the store price applies) and new differing rules are refused. Turning
    online-only on needs none either: from then on the brand's SKUs are not sellable on
    offline channels (domain.assortments.sellable) and can't be listed there anew."""
    v = Validator()
    validate_code(v, "brand_code", brand_code)
    v.raise_if_any()
    repo = TaxonomyRepository(uow.session)
    current = await repo.get_brand(brand_code, lock=True)
    if current is None:
        raise NotFound(f"brand {brand_code} does not exist")
    if same_price is None:
        same_price = current.same_price_online_offline
    if online_only is None:
        online_only = current.online_only
    if (current.same_price_online_offline, current.online_only) == (same_price, online_only):
        return current
    brand = await repo.update_brand_policy(
        brand_code, same_price=same_price, online_only=online_only
    )
    assert brand is not None
    uow.emit(
        events_pb2.BrandPolicyChangedEvent(brand=brand_to_proto(brand)), aggregate_id=brand_code
    )
    return brand


async def create_category(uow: UnitOfWork, category: Category) -> Category:
    v = Validator()
    validate_code(v, "category.category_code", category.category_code)
    validate_name(v, "category.name", category.name)
    validate_code(v, "category.parent_code", category.parent_code, required=False)
    v.raise_if_any()
    repo = TaxonomyRepository(uow.session)
    if category.parent_code and await repo.get_category(category.parent_code) is None:
        raise NotFound(f"parent category {category.parent_code} does not exist")
    if not await repo.add_category(category):
        raise AlreadyExists(f"category {category.category_code} already exists")
    return category


async def move_category(uow: UnitOfWork, category_code: str, new_parent_code: str) -> Category:
    """Move a category, with its whole subtree, under a new parent (or to the root).

    A move under itself or under one of its own descendants would make a cycle and is refused
    (FAILED_PRECONDITION)."""
    v = Validator()
    validate_code(v, "category_code", category_code)
    validate_code(v, "new_parent_code", new_parent_code, required=False)
    v.raise_if_any()
    repo = TaxonomyRepository(uow.session)
    await repo.lock_tree()
    if await repo.get_category(category_code) is None:
        raise NotFound(f"category {category_code} does not exist")
    if new_parent_code:
        ancestry = await repo.ancestry(new_parent_code)
        if not ancestry:
            raise NotFound(f"category {new_parent_code} does not exist")
        check_move(category_code, ancestry)
    return await repo.set_parent(category_code, new_parent_code)


def brand_to_proto(b: Brand) -> catalog_pb2.Brand:
    return catalog_pb2.Brand(
        brand_code=b.brand_code,
        name=b.name,
        same_price_online_offline=b.same_price_online_offline,
        online_only=b.online_only,
    )
