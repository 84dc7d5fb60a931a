"""Styles and SKUs in the catalog database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.errors import AlreadyExists
from services.catalog.adapters.tables import assortments, categories, skus, styles
from services.catalog.domain.pricing import Money
from services.catalog.domain.skus import Lifecycle, NewSku, Sku, gtin13


@dataclass(frozen=True)
class Style:
    style_code: str
    name: str
    brand_code: str
    category_code: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class SkuSearch:
    text: str = ""
    category_code: str = ""
    brand_code: str = ""
    channel_id: str = ""
    lifecycle: Lifecycle | None = None
    page_size: int = 50
    after_sku_code: str = ""


def _sku_select() -> sa.Select[Any]:
    return sa.select(skus, styles.c.brand_code, styles.c.category_code).select_from(
        skus.join(styles, styles.c.style_code == skus.c.style_code)
    )


class SkuRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_style(self, style: Style) -> bool:
        """Insert a style; False when the code is taken."""
        row = (
            await self.session.execute(
                insert(styles)
                .values(
                    style_code=style.style_code,
                    name=style.name,
                    brand_code=style.brand_code or None,
                    category_code=style.category_code or None,
                    attributes=style.attributes,
                )
                .on_conflict_do_nothing()
                .returning(styles.c.style_code)
            )
        ).first()
        return row is not None

    async def ensure_styles(self, rows: Sequence[dict[str, object]]) -> None:
        """Insert the styles that do not exist yet; existing ones are left as they are."""
        if rows:
            await self.session.execute(insert(styles).on_conflict_do_nothing(), list(rows))

    async def get_styles(self, codes: Iterable[str]) -> dict[str, Style]:
        result = await self.session.execute(
            sa.select(styles).where(styles.c.style_code.in_(list(set(codes))))
        )
        return {
            r.style_code: Style(
                r.style_code, r.name, r.brand_code or "", r.category_code or "", r.attributes
            )
            for r in result
        }

    async def add(self, new: NewSku) -> Sku:
        """Insert a SKU; a duplicate code or barcode (by GTIN: a UPC-A code and its
        zero-prefixed EAN-13 are one) is ALREADY_EXISTS."""
        if new.barcode and (owner := await self._gtin_owner(new.barcode)) is not None:
            raise AlreadyExists(
                f"barcode {new.barcode} is already used by SKU {owner} (GTIN {gtin13(new.barcode)})"
            )
        await self.ensure_styles([{"style_code": new.style_code, "name": new.name}])
        row = (
            await self.session.execute(
                insert(skus)
                .values(self.row_for(new))
                .on_conflict_do_nothing()
                .returning(skus.c.sku_code)
            )
        ).first()
        if row is None:
            if await self.get(new.sku_code) is not None:
                raise AlreadyExists(f"SKU {new.sku_code} already exists")
            raise AlreadyExists(f"barcode {new.barcode} is already used by another SKU")
        created = await self.get(new.sku_code)
        assert created is not None
        return created

    @staticmethod
    def row_for(new: NewSku) -> dict[str, object]:
        return {
            "sku_code": new.sku_code,
            "style_code": new.style_code,
            "name": new.name,
            "barcode": new.barcode or None,
            "gtin": gtin13(new.barcode) or None,
            "color": new.color,
            "size": new.size,
            "lifecycle": new.lifecycle.value,
            "list_price_minor": new.list_price.amount_minor if new.list_price else None,
            "currency": new.list_price.currency if new.list_price else None,
            "attributes": new.attributes,
        }

    async def insert_many(self, rows: Sequence[dict[str, object]]) -> None:
        if rows:
            await self.session.execute(insert(skus), list(rows))

    async def get(self, sku_code: str, *, lock: bool = False) -> Sku | None:
        query = _sku_select().where(skus.c.sku_code == sku_code)
        if lock:
            query = query.with_for_update(of=skus)
        row = (await self.session.execute(query)).first()
        return to_sku(row) if row else None

    async def get_many(self, sku_codes: Iterable[str], *, lock: bool = False) -> dict[str, Sku]:
        query = _sku_select().where(skus.c.sku_code.in_(list(set(sku_codes))))
        if lock:
            query = query.with_for_update(of=skus)
        return {r.sku_code: to_sku(r) for r in await self.session.execute(query)}

    async def gtin_owners(self, barcodes: Iterable[str]) -> dict[str, str]:
        """GTIN-13 → the SKU holding it, for the GTINs of these barcodes."""
        gtins = list({gtin13(b) for b in barcodes if b})
        result = await self.session.execute(
            sa.select(skus.c.gtin, skus.c.sku_code).where(skus.c.gtin.in_(gtins))
        )
        return {r.gtin: r.sku_code for r in result}

    async def update(self, sku_code: str, **values: object) -> Sku:
        if "barcode" in values:
            values["gtin"] = gtin13(str(values["barcode"] or "")) or None
        await self.session.execute(
            skus.update()
            .where(skus.c.sku_code == sku_code)
            .values(**values, updated_at=sa.func.now())
        )
        updated = await self.get(sku_code)
        assert updated is not None
        return updated

    async def search(self, criteria: SkuSearch) -> list[Sku]:
        query = _sku_select()
        if criteria.text:
            pattern = (
                "%"
                + criteria.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            query = query.where(
                sa.or_(
                    skus.c.sku_code.ilike(pattern),
                    skus.c.name.ilike(pattern),
                    skus.c.barcode.ilike(pattern),
                    skus.c.gtin.ilike(pattern),
                    styles.c.name.ilike(pattern),
                )
            )
        if criteria.category_code:
            tree = (
                sa.select(categories.c.category_code)
                .where(categories.c.category_code == criteria.category_code)
                .cte("subtree", recursive=True)
            )
            tree = tree.union_all(
                sa.select(categories.c.category_code).where(
                    categories.c.parent_code == tree.c.category_code
                )
            )
            query = query.where(styles.c.category_code.in_(sa.select(tree.c.category_code)))
        if criteria.brand_code:
            query = query.where(styles.c.brand_code == criteria.brand_code)
        if criteria.channel_id:
            query = query.where(
                sa.exists().where(
                    assortments.c.channel_id == criteria.channel_id,
                    assortments.c.sku_code == skus.c.sku_code,
                )
            )
        if criteria.lifecycle is not None:
            query = query.where(skus.c.lifecycle == criteria.lifecycle.value)
        if criteria.after_sku_code:
            query = query.where(skus.c.sku_code > criteria.after_sku_code)
        query = query.order_by(skus.c.sku_code).limit(criteria.page_size + 1)
        return [to_sku(r) for r in await self.session.execute(query)]

    async def _gtin_owner(self, barcode: str) -> str | None:
        found = await self.session.execute(
            sa.select(skus.c.sku_code).where(skus.c.gtin == gtin13(barcode))
        )
        return found.scalar()


def to_sku(row: sa.Row[Any]) -> Sku:
    m = row._mapping
    price_minor: int | None = m["list_price_minor"]
    updated_at: datetime | None = m["updated_at"]
    return Sku(
        sku_code=m["sku_code"],
        style_code=m["style_code"],
        name=m["name"],
        barcode=m["barcode"] or "",
        color=m["color"],
        size=m["size"],
        created_at=m["created_at"],
        lifecycle=Lifecycle(m["lifecycle"]),
        list_price=Money(m["currency"], price_minor) if price_minor is not None else None,
        brand_code=m["brand_code"] or "",
        category_code=m["category_code"] or "",
        attributes=dict(m["attributes"]),
        updated_at=updated_at,
    )
