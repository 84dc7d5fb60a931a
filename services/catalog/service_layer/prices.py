"""Price use cases: list, channel and regional prices, promotions, and price resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from omni.catalog.v1 import catalog_pb2, events_pb2

from libs.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.catalog import metrics
from services.catalog.adapters.channel_repository import ChannelRepository
from services.catalog.adapters.price_repository import PriceRepository, Promotion
from services.catalog.adapters.proto import (
    PRICE_SOURCE_TO_PROTO,
    money_to_proto,
    sku_to_proto,
    timestamp,
)
from services.catalog.adapters.sku_repository import SkuRepository
from services.catalog.domain.assortments import sellable
from services.catalog.domain.pricing import (
    ChannelRule,
    Money,
    ResolvedPrice,
    check_same_price,
    currency_clash,
    first_overlap,
    resolve,
    sku_currencies,
    validate_channel_rule,
    validate_money,
)
from services.catalog.domain.skus import Sku, validate_code

MAX_CART_LINES = 500
MAX_PROMOTION_ITEMS = 1000


async def _check_currency(uow: UnitOfWork, sku: Sku, price: Money, field: str) -> None:
    """One currency per SKU (domain.pricing.currency_clash); the caller holds the SKU's row
    lock, which every price writer takes, so two first prices can't race in two currencies."""
    others = await PriceRepository(uow.session).currencies_of([sku.sku_code])
    clash = currency_clash(
        price.currency, sku_currencies(sku.list_price, others.get(sku.sku_code, set()))
    )
    if clash is not None:
        raise InvalidArgument.field(field, f"must be in the SKU's currency {clash}")


async def _sku(uow: UnitOfWork, sku_code: str) -> Sku:
    sku = await SkuRepository(uow.session).get(sku_code, lock=True)
    if sku is None:
        raise NotFound(f"SKU {sku_code} does not exist")
    return sku


def rule_to_proto(
    channel_id: str, sku_code: str, rule: ChannelRule
) -> catalog_pb2.ChannelPriceRule:
    message = catalog_pb2.ChannelPriceRule(channel_id=channel_id, sku_code=sku_code)
    if rule.fixed is not None:
        message.fixed_price.CopyFrom(money_to_proto(rule.fixed))
    else:
        message.percentage_of_list_bp = rule.percentage_bp or 0
    return message


async def set_list_price(uow: UnitOfWork, sku_code: str, price: Money | None) -> Sku:
    """Set a SKU's list price; its currency, once set, stays. Announced as PriceChangedEvent."""
    v = Validator()
    validate_code(v, "sku_code", sku_code)
    validate_money(v, "list_price", price, required=True)
    v.raise_if_any()
    assert price is not None
    current = await _sku(uow, sku_code)
    if current.list_price == price:
        return current
    await _check_currency(uow, current, price, "list_price.currency_code")
    sku = await SkuRepository(uow.session).update(
        sku_code, list_price_minor=price.amount_minor, currency=price.currency
    )
    uow.emit(
        events_pb2.PriceChangedEvent(sku_code=sku_code, list_price_of=sku_to_proto(sku)),
        aggregate_id=sku_code,
    )
    return sku


async def set_channel_price_rule(
    uow: UnitOfWork, channel_id: str, sku_code: str, rule: ChannelRule
) -> ChannelRule:
    """Set a channel's fixed or percentage-of-list price for a SKU.

    Under the brand's same-price-online-and-offline policy a rule whose price differs from the
    store price (list price, or any regional price) is refused with the reason; a different
    price is only possible inside a declared promotion."""
    v = Validator()
    validate_code(v, "rule.channel_id", channel_id)
    validate_code(v, "rule.sku_code", sku_code)
    validate_channel_rule(v, "rule", rule)
    v.raise_if_any()
    if await ChannelRepository(uow.session).channel_kind(channel_id) is None:
        raise NotFound(f"channel {channel_id} is not registered in the catalog")
    sku = await _sku(uow, sku_code)
    if rule.fixed is not None:
        await _check_currency(uow, sku, rule.fixed, "rule.fixed_price.currency_code")
    prices = PriceRepository(uow.session)
    if await prices.same_price_policy(sku_code):
        try:
            check_same_price(rule, sku.list_price, await prices.regional_prices_of(sku_code))
        except FailedPrecondition:
            metrics.SAME_PRICE_REFUSALS.inc()
            raise
    await prices.upsert_channel_rule(channel_id, sku_code, rule)
    uow.emit(
        events_pb2.PriceChangedEvent(
            sku_code=sku_code, channel_rule=rule_to_proto(channel_id, sku_code, rule)
        ),
        aggregate_id=sku_code,
    )
    return rule


async def set_regional_price(
    uow: UnitOfWork, sku_code: str, region_code: str, price: Money | None
) -> Money:
    """Set a SKU's price in a region: the store price there, for every channel in the region."""
    v = Validator()
    validate_code(v, "regional_price.sku_code", sku_code)
    validate_code(v, "regional_price.region_code", region_code)
    validate_money(v, "regional_price.price", price, required=True)
    v.raise_if_any()
    assert price is not None
    sku = await _sku(uow, sku_code)
    await _check_currency(uow, sku, price, "regional_price.price.currency_code")
    await PriceRepository(uow.session).upsert_regional_price(sku_code, region_code, price)
    uow.emit(
        events_pb2.PriceChangedEvent(
            sku_code=sku_code,
            regional_price=catalog_pb2.RegionalPrice(
                sku_code=sku_code, region_code=region_code, price=money_to_proto(price)
            ),
        ),
        aggregate_id=sku_code,
    )
    return price


def promotion_to_proto(p: Promotion) -> catalog_pb2.Promotion:
    return catalog_pb2.Promotion(
        promotion_id=p.promotion_id,
        name=p.name,
        channel_ids=list(p.channel_ids),
        items=[
            catalog_pb2.PromotionItem(sku_code=sku, price=money_to_proto(price))
            for sku, price in p.items
        ],
        start_time=timestamp(p.start),
        end_time=timestamp(p.end),
    )


async def declare_promotion(uow: UnitOfWork, promotion: Promotion) -> Promotion:
    """Declare a time-boxed promotion: its prices apply on its channels in [start, end).

    It is the one exception to the same-price policy. Two promotions of a common channel and
    SKU may not overlap in time (FAILED_PRECONDITION), so at any instant at most one applies.
    PromotionStartedEvent/EndedEvent are emitted by the promotion clock at the edges."""
    v = Validator()
    validate_code(v, "promotion.promotion_id", promotion.promotion_id)
    v.check(bool(promotion.name.strip()), "promotion.name", "is required")
    v.check(bool(promotion.channel_ids), "promotion.channel_ids", "needs at least one channel")
    for i, c in enumerate(promotion.channel_ids):
        validate_code(v, f"promotion.channel_ids[{i}]", c)
    v.check(
        len(set(promotion.channel_ids)) == len(promotion.channel_ids),
        "promotion.channel_ids",
        "must not repeat",
    )
    v.check(
        0 < len(promotion.items) <= MAX_PROMOTION_ITEMS,
        "promotion.items",
        f"needs 1-{MAX_PROMOTION_ITEMS} items",
    )
    for i, (sku, price) in enumerate(promotion.items):
        validate_code(v, f"promotion.items[{i}].sku_code", sku)
        validate_money(v, f"promotion.items[{i}].price", price, required=True)
    v.check(
        len({sku for sku, _ in promotion.items}) == len(promotion.items),
        "promotion.items",
        "must not repeat a SKU",
    )
    v.check(promotion.window.start is not None, "promotion.start_time", "is required")
    v.check(promotion.window.end is not None, "promotion.end_time", "is required")
    v.check(promotion.window.is_well_formed(), "promotion.end_time", "must be after start_time")
    v.raise_if_any()
    channels = ChannelRepository(uow.session)
    for c in promotion.channel_ids:
        if await channels.channel_kind(c) is None:
            raise NotFound(f"channel {c} is not registered in the catalog")
    sku_codes = [sku for sku, _ in promotion.items]
    skus = await SkuRepository(uow.session).get_many(sku_codes, lock=True)
    if missing := sorted(set(sku_codes) - skus.keys()):
        raise NotFound(f"SKUs do not exist: {', '.join(missing[:20])}")
    others = await PriceRepository(uow.session).currencies_of(sku_codes)
    v = Validator()
    for i, (sku, price) in enumerate(promotion.items):
        priced_in = sku_currencies(skus[sku].list_price, others.get(sku, set()))
        if clash := currency_clash(price.currency, priced_in):
            v.add(
                f"promotion.items[{i}].price.currency_code",
                f"must be in the SKU's currency {clash}",
            )
    v.raise_if_any()
    prices = PriceRepository(uow.session)
    await prices.lock_promotions()
    if await prices.promotion_exists(promotion.promotion_id):
        raise AlreadyExists(f"promotion {promotion.promotion_id} already exists")
    clash = first_overlap(
        promotion.window, await prices.promotion_windows(promotion.channel_ids, sku_codes)
    )
    if clash is not None:
        raise FailedPrecondition(
            f"promotion {clash} already covers one of these channels and SKUs in an "
            "overlapping window"
        )
    if not await prices.add_promotion(promotion):
        raise AlreadyExists(f"promotion {promotion.promotion_id} already exists")
    return promotion


def resolved_to_proto(
    sku_code: str, channel_id: str, region_code: str, at: datetime, quote: Quote
) -> catalog_pb2.ResolvedPrice:
    resolved = quote.price
    return catalog_pb2.ResolvedPrice(
        sku_code=sku_code,
        channel_id=channel_id,
        region_code=region_code,
        at=timestamp(at),
        price=money_to_proto(resolved.price),
        source=PRICE_SOURCE_TO_PROTO[resolved.source],
        promotion_id=resolved.promotion_id,
        explanation=resolved.explanation,
        sellable=quote.sellable,
    )


@dataclass(frozen=True)
class Quote:
    price: ResolvedPrice
    # Whether the channel may sell the SKU at ``at`` (domain.assortments.sellable).
    sellable: bool


async def resolve_prices(
    uow: UnitOfWork, sku_codes: Sequence[str], channel_id: str, region_code: str, at: datetime
) -> list[Quote]:
    """The price of each SKU on the channel in the region at ``at``, and the rule behind it
    (precedence in domain.pricing). An unknown SKU is NOT_FOUND, a SKU no rule prices is
    FAILED_PRECONDITION — a cart can't be priced in part."""
    v = Validator()
    validate_code(v, "channel_id", channel_id)
    validate_code(v, "region_code", region_code, required=False)
    v.check(0 < len(sku_codes) <= MAX_CART_LINES, "lines", f"needs 1-{MAX_CART_LINES} lines")
    for i, code in enumerate(sku_codes):
        validate_code(v, f"lines[{i}].sku_code", code)
    v.raise_if_any()
    channel_kind = await ChannelRepository(uow.session).channel_kind(channel_id)
    if channel_kind is None:
        raise NotFound(f"channel {channel_id} is not registered in the catalog")
    facts = await PriceRepository(uow.session).price_inputs(sku_codes, channel_id, region_code, at)
    if missing := sorted(set(sku_codes) - facts.keys()):
        raise NotFound(f"SKUs do not exist: {', '.join(missing[:20])}")
    resolved: list[Quote] = []
    for code in sku_codes:
        try:
            price = resolve(facts[code].inputs, at)
        except FailedPrecondition as error:
            raise FailedPrecondition(f"SKU {code}: {error.message}") from None
        metrics.PRICES_RESOLVED.labels(price.source.value).inc()
        resolved.append(
            Quote(
                price,
                sellable(
                    facts[code].listing,
                    at,
                    channel_kind=channel_kind,
                    brand_online_only=facts[code].brand_online_only,
                ),
            )
        )
    return resolved
