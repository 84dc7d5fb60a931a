"""Brands and the category tree in the catalog database."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog.adapters.tables import brands, categories


@dataclass(frozen=True)
class Brand:
    brand_code: str
    name: str
    same_price_online_offline: bool
    online_only: bool


@dataclass(frozen=True)
class Category:
    category_code: str
    name: str
    parent_code: str


class TaxonomyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_brand(self, brand: Brand) -> bool:
        row = (
            await self.session.execute(
                insert(brands)
                .values(
                    brand_code=brand.brand_code,
                    name=brand.name,
                    same_price_online_offline=brand.same_price_online_offline,
                    online_only=brand.online_only,
                )
                .on_conflict_do_nothing()
                .returning(brands.c.brand_code)
            )
        ).first()
        return row is not None

    async def get_brand(self, brand_code: str, *, lock: bool = False) -> Brand | None:
        query = sa.select(brands).where(brands.c.brand_code == brand_code)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return Brand(row.brand_code, row.name, row.same_price_online_offline, row.online_only)

    async def update_brand_policy(
        self, brand_code: str, *, same_price: bool, online_only: bool
    ) -> Brand | None:
        row = (
            await self.session.execute(
                brands.update()
                .where(brands.c.brand_code == brand_code)
                .values(
                    same_price_online_offline=same_price,
                    online_only=online_only,
                    updated_at=sa.func.now(),
                )
                .returning(brands)
            )
        ).first()
        if row is None:
            return None
        return Brand(row.brand_code, row.name, row.same_price_online_offline, row.online_only)

    async def existing_brands(self, codes: set[str]) -> set[str]:
        result = await self.session.execute(
            sa.select(brands.c.brand_code).where(brands.c.brand_code.in_(codes))
        )
        return set(result.scalars())

    async def existing_categories(self, codes: set[str]) -> set[str]:
        result = await self.session.execute(
            sa.select(categories.c.category_code).where(categories.c.category_code.in_(codes))
        )
        return set(result.scalars())

    async def add_category(self, category: Category) -> bool:
        row = (
            await self.session.execute(
                insert(categories)
                .values(
                    category_code=category.category_code,
                    name=category.name,
                    parent_code=category.parent_code or None,
                )
                .on_conflict_do_nothing()
                .returning(categories.c.category_code)
            )
        ).first()
        return row is not None

    async def get_category(self, code: str) -> Category | None:
        row = (
            await self.session.execute(
                sa.select(categories).where(categories.c.category_code == code)
            )
        ).first()
        return Category(row.category_code, row.name, row.parent_code or "") if row else None

    async def lock_tree(self) -> None:
        """Serialises moves: two concurrent moves could each pass the cycle check and together
        make a cycle, so every move takes this transaction-scoped lock first."""
        await self.session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("catalog.category_tree")))
        )

    async def ancestry(self, code: str) -> list[str]:
        """``code`` followed by its ancestors up to its root."""
        path = (
            sa.select(
                categories.c.category_code, categories.c.parent_code, sa.literal(0).label("depth")
            )
            .where(categories.c.category_code == code)
            .cte("path", recursive=True)
        )
        path = path.union_all(
            sa.select(categories.c.category_code, categories.c.parent_code, path.c.depth + 1).where(
                categories.c.category_code == path.c.parent_code,
                # A guard against an (impossible) existing cycle looping forever.
                path.c.depth < 10_000,
            )
        )
        result = await self.session.execute(sa.select(path.c.category_code).order_by(path.c.depth))
        return list(result.scalars())

    async def set_parent(self, code: str, parent_code: str) -> Category:
        await self.session.execute(
            categories.update()
            .where(categories.c.category_code == code)
            .values(parent_code=parent_code or None, updated_at=sa.func.now())
        )
        moved = await self.get_category(code)
        assert moved is not None
        return moved
