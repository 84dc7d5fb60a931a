"""Price rules and promotions in the catalog database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog.adapters.tables import (
    assortments,
    brands,
    channel_price_rules,
    promotion_channels,
    promotion_items,
    promotions,
    regional_prices,
    skus,
    styles,
)
from services.catalog.domain.pricing import ChannelRule, Money, PriceInputs, PromotionPrice, Window


@dataclass(frozen=True)
class Promotion:
    promotion_id: str
    name: str
    channel_ids: tuple[str, ...]
    items: tuple[tuple[str, Money], ...]
    window: Window

    @property
    def start(self) -> datetime:
        assert self.window.start is not None
        return self.window.start

    @property
    def end(self) -> datetime:
        assert self.window.end is not None
        return self.window.end


@dataclass(frozen=True)
class PricingFacts:
    inputs: PriceInputs
    # The SKU's sellable window on the channel; None when the channel doesn't list it.
    listing: Window | None
    # The SKU's brand is sold online only (its offline listings are not sellable).
    brand_online_only: bool = False


class PriceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert_channel_rule(self, channel_id: str, sku_code: str, rule: ChannelRule) -> None:
        values = {
            "fixed_minor": rule.fixed.amount_minor if rule.fixed else None,
            "currency": rule.fixed.currency if rule.fixed else None,
            "percentage_bp": rule.percentage_bp,
        }
        await self.session.execute(
            insert(channel_price_rules)
            .values(channel_id=channel_id, sku_code=sku_code, **values)
            .on_conflict_do_update(
                index_elements=[channel_price_rules.c.channel_id, channel_price_rules.c.sku_code],
                set_={**values, "updated_at": sa.func.now()},
            )
        )

    async def upsert_regional_price(self, sku_code: str, region_code: str, price: Money) -> None:
        values = {"amount_minor": price.amount_minor, "currency": price.currency}
        await self.session.execute(
            insert(regional_prices)
            .values(sku_code=sku_code, region_code=region_code, **values)
            .on_conflict_do_update(
                index_elements=[regional_prices.c.sku_code, regional_prices.c.region_code],
                set_={**values, "updated_at": sa.func.now()},
            )
        )

    async def regional_prices_of(self, sku_code: str) -> list[Money]:
        result = await self.session.execute(
            sa.select(regional_prices.c.currency, regional_prices.c.amount_minor).where(
                regional_prices.c.sku_code == sku_code
            )
        )
        return [Money(r.currency, r.amount_minor) for r in result]

    async def currencies_of(self, sku_codes: Sequence[str]) -> dict[str, set[str]]:
        """The currencies of each SKU's regional, fixed channel and promotion prices (the
        list price's is on the SKU row)."""
        if not sku_codes:
            return {}
        codes = list(set(sku_codes))
        union = sa.union(
            sa.select(regional_prices.c.sku_code, regional_prices.c.currency).where(
                regional_prices.c.sku_code.in_(codes)
            ),
            sa.select(channel_price_rules.c.sku_code, channel_price_rules.c.currency).where(
                channel_price_rules.c.sku_code.in_(codes),
                channel_price_rules.c.currency.is_not(None),
            ),
            sa.select(promotion_items.c.sku_code, promotion_items.c.currency).where(
                promotion_items.c.sku_code.in_(codes)
            ),
        )
        found: dict[str, set[str]] = defaultdict(set)
        for sku_code, currency in await self.session.execute(union):
            found[sku_code].add(currency)
        return dict(found)

    async def same_price_policy(self, sku_code: str) -> bool:
        found = (
            await self.session.execute(
                sa.select(brands.c.same_price_online_offline)
                .select_from(skus.join(styles).join(brands))
                .where(skus.c.sku_code == sku_code)
            )
        ).scalar()
        return bool(found)

    async def lock_promotions(self) -> None:
        """Serialises promotion declarations so two overlapping ones can't both pass the
        overlap check; declarations are rare, so one lock for all is enough."""
        await self.session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("catalog.promotions")))
        )

    async def promotion_windows(
        self, channel_ids: Sequence[str], sku_codes: Sequence[str]
    ) -> list[tuple[str, Window]]:
        """Windows of the promotions that share at least one channel and one SKU."""
        result = await self.session.execute(
            sa.select(promotions.c.promotion_id, promotions.c.start_at, promotions.c.end_at)
            .where(
                sa.exists().where(
                    promotion_channels.c.promotion_id == promotions.c.promotion_id,
                    promotion_channels.c.channel_id.in_(channel_ids),
                ),
                sa.exists().where(
                    promotion_items.c.promotion_id == promotions.c.promotion_id,
                    promotion_items.c.sku_code.in_(sku_codes),
                ),
            )
            .order_by(promotions.c.start_at)
        )
        return [(r.promotion_id, Window(r.start_at, r.end_at)) for r in result]

    async def promotion_exists(self, promotion_id: str) -> bool:
        found = await self.session.execute(
            sa.select(promotions.c.promotion_id).where(promotions.c.promotion_id == promotion_id)
        )
        return found.first() is not None

    async def add_promotion(self, promotion: Promotion) -> bool:
        row = (
            await self.session.execute(
                insert(promotions)
                .values(
                    promotion_id=promotion.promotion_id,
                    name=promotion.name,
                    start_at=promotion.start,
                    end_at=promotion.end,
                )
                .on_conflict_do_nothing()
                .returning(promotions.c.promotion_id)
            )
        ).first()
        if row is None:
            return False
        await self.session.execute(
            insert(promotion_channels),
            [
                {"promotion_id": promotion.promotion_id, "channel_id": c}
                for c in promotion.channel_ids
            ],
        )
        await self.session.execute(
            insert(promotion_items),
            [
                {
                    "promotion_id": promotion.promotion_id,
                    "sku_code": sku,
                    "amount_minor": price.amount_minor,
                    "currency": price.currency,
                }
                for sku, price in promotion.items
            ],
        )
        return True

    async def load_promotions(self, promotion_ids: Sequence[str]) -> list[Promotion]:
        heads = await self.session.execute(
            sa.select(promotions).where(promotions.c.promotion_id.in_(promotion_ids))
        )
        channel_rows = await self.session.execute(
            sa.select(promotion_channels).where(
                promotion_channels.c.promotion_id.in_(promotion_ids)
            )
        )
        item_rows = await self.session.execute(
            sa.select(promotion_items).where(promotion_items.c.promotion_id.in_(promotion_ids))
        )
        channel_map: dict[str, list[str]] = defaultdict(list)
        for r in channel_rows:
            channel_map[r.promotion_id].append(r.channel_id)
        item_map: dict[str, list[tuple[str, Money]]] = defaultdict(list)
        for r in item_rows:
            item_map[r.promotion_id].append((r.sku_code, Money(r.currency, r.amount_minor)))
        return [
            Promotion(
                h.promotion_id,
                h.name,
                tuple(sorted(channel_map[h.promotion_id])),
                tuple(sorted(item_map[h.promotion_id])),
                Window(h.start_at, h.end_at),
            )
            for h in heads
        ]

    async def claim_due_edges(self, edge: str, now: datetime, limit: int) -> list[str]:
        """Promotions whose start (or end) has passed and whose event nobody emitted yet,
        marked as emitted. Rows another replica is handling are skipped (SKIP LOCKED), and the
        mark commits with the outbox rows, so each event leaves exactly once."""
        at_column, mark_column = (
            (promotions.c.start_at, promotions.c.started_emitted_at)
            if edge == "start"
            else (promotions.c.end_at, promotions.c.ended_emitted_at)
        )
        conditions = [mark_column.is_(None), at_column <= now]
        if edge == "end":
            # The ended event never overtakes its started event.
            conditions.append(promotions.c.started_emitted_at.is_not(None))
        due = (
            sa.select(promotions.c.promotion_id)
            .where(*conditions)
            .order_by(at_column)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await self.session.execute(due)).scalars())
        if ids:
            await self.session.execute(
                promotions.update()
                .where(promotions.c.promotion_id.in_(ids))
                .values({mark_column.name: now})
            )
        return ids

    async def price_inputs(
        self, sku_codes: Sequence[str], channel_id: str, region_code: str, at: datetime
    ) -> dict[str, PricingFacts]:
        """Everything needed to resolve these SKUs' prices on the channel in the region at
        ``at``, in two queries; SKUs that don't exist are absent."""
        codes = list(set(sku_codes))
        rule, regional, listing = (
            channel_price_rules.alias("rule"),
            regional_prices.alias("regional"),
            assortments.alias("listing"),
        )
        base = await self.session.execute(
            sa.select(
                skus.c.sku_code,
                skus.c.list_price_minor,
                skus.c.currency,
                # A correlated lookup by primary keys: cheap whatever the planner's statistics
                # say (a hash join over all styles was chosen right after a bulk import).
                sa.func.coalesce(
                    sa.select(brands.c.same_price_online_offline)
                    .select_from(styles.join(brands))
                    .where(styles.c.style_code == skus.c.style_code)
                    .scalar_subquery(),
                    False,
                ).label("same_price"),
                sa.func.coalesce(
                    sa.select(brands.c.online_only)
                    .select_from(styles.join(brands))
                    .where(styles.c.style_code == skus.c.style_code)
                    .scalar_subquery(),
                    False,
                ).label("online_only"),
                rule.c.fixed_minor.label("rule_fixed_minor"),
                rule.c.currency.label("rule_currency"),
                rule.c.percentage_bp.label("rule_percentage_bp"),
                rule.c.sku_code.label("rule_sku"),
                regional.c.amount_minor.label("regional_minor"),
                regional.c.currency.label("regional_currency"),
                listing.c.sku_code.label("listed_sku"),
                listing.c.sellable_from,
                listing.c.sellable_until,
            )
            .select_from(
                skus.outerjoin(
                    rule,
                    sa.and_(rule.c.sku_code == skus.c.sku_code, rule.c.channel_id == channel_id),
                )
                .outerjoin(
                    regional,
                    sa.and_(
                        regional.c.sku_code == skus.c.sku_code,
                        regional.c.region_code == region_code,
                    ),
                )
                .outerjoin(
                    listing,
                    sa.and_(
                        listing.c.sku_code == skus.c.sku_code, listing.c.channel_id == channel_id
                    ),
                )
            )
            .where(skus.c.sku_code.in_(codes))
        )
        promos: dict[str, list[PromotionPrice]] = defaultdict(list)
        for r in await self.session.execute(
            sa.select(
                promotion_items.c.sku_code,
                promotion_items.c.amount_minor,
                promotion_items.c.currency,
                promotions.c.promotion_id,
                promotions.c.start_at,
                promotions.c.end_at,
            )
            .select_from(promotion_items.join(promotions).join(promotion_channels))
            .where(
                promotion_channels.c.channel_id == channel_id,
                promotion_items.c.sku_code.in_(codes),
                promotions.c.start_at <= at,
                promotions.c.end_at > at,
            )
        ):
            promos[r.sku_code].append(
                PromotionPrice(
                    r.promotion_id, Window(r.start_at, r.end_at), Money(r.currency, r.amount_minor)
                )
            )
        facts: dict[str, PricingFacts] = {}
        for row in base:
            channel_rule = (
                ChannelRule(
                    fixed=(
                        Money(row.rule_currency, row.rule_fixed_minor)
                        if row.rule_fixed_minor is not None
                        else None
                    ),
                    percentage_bp=row.rule_percentage_bp,
                )
                if row.rule_sku is not None
                else None
            )
            inputs = PriceInputs(
                list_price=(
                    Money(row.currency, row.list_price_minor)
                    if row.list_price_minor is not None
                    else None
                ),
                regional_price=(
                    Money(row.regional_currency, row.regional_minor)
                    if row.regional_minor is not None
                    else None
                ),
                channel_rule=channel_rule,
                promotions=promos[row.sku_code],
                same_price_policy=bool(row.same_price),
            )
            listed = (
                Window(row.sellable_from, row.sellable_until)
                if row.listed_sku is not None
                else None
            )
            facts[row.sku_code] = PricingFacts(inputs, listed, bool(row.online_only))
        return facts
