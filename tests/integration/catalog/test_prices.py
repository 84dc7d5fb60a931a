"""List, regional and channel prices; the same-price policy and its promotion exception at the
window's edges; one price query and the cart form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import events_pb2
from omni.common.v1 import money_pb2

from tests.integration.catalog.helpers import (
    cny,
    expect_error,
    expect_invalid,
    make_brand,
    make_channel,
    make_sku,
    make_style,
    rid,
    ts,
)

START = datetime(2026, 11, 11, tzinfo=UTC)
END = START + timedelta(days=1)
US = timedelta(microseconds=1)


async def price(catalog, sku: str, channel: str, at: datetime, region: str = "") -> c.ResolvedPrice:
    response = await catalog.stub.ResolvePrice(
        cat.ResolvePriceRequest(sku_code=sku, channel_id=channel, region_code=region, at=ts(at)),
        timeout=5,
    )
    return response.price


async def set_rule(catalog, channel: str, sku: str, **rule) -> cat.SetChannelPriceRuleResponse:
    return await catalog.stub.SetChannelPriceRule(
        cat.SetChannelPriceRuleRequest(
            request_id=rid(), rule=c.ChannelPriceRule(channel_id=channel, sku_code=sku, **rule)
        ),
        timeout=5,
    )


async def test_rules_and_which_one_produced_the_price(catalog, unique):
    stub = catalog.stub
    channel, other = f"PC{unique}", f"PO{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    await make_channel(stub, other, c.CHANNEL_KIND_OFFLINE)
    sku = f"P{unique}"
    await make_sku(stub, sku, sku, list_price=19999)
    now = datetime.now(UTC)

    listed = await price(catalog, sku, channel, now)
    assert (listed.price, listed.source) == (cny(19999), c.PRICE_SOURCE_LIST)

    await stub.SetRegionalPrice(
        cat.SetRegionalPriceRequest(
            request_id=rid(),
            regional_price=c.RegionalPrice(sku_code=sku, region_code="CN-31", price=cny(18000)),
        ),
        timeout=5,
    )
    regional = await price(catalog, sku, other, now, "CN-31")
    assert (regional.price, regional.source) == (cny(18000), c.PRICE_SOURCE_REGIONAL)
    assert (await price(catalog, sku, other, now, "CN-11")).source == c.PRICE_SOURCE_LIST

    # 88.88% of 199.99 = 177.751112 → rounded half up to 17775 fen
    await set_rule(catalog, channel, sku, percentage_of_list_bp=8888)
    by_rule = await price(catalog, sku, channel, now, "CN-31")
    assert (by_rule.price, by_rule.source) == (cny(17775), c.PRICE_SOURCE_CHANNEL_PERCENTAGE)
    assert "88.88%" in by_rule.explanation
    await set_rule(catalog, channel, sku, fixed_price=cny(15000))
    fixed = await price(catalog, sku, channel, now)
    assert (fixed.price, fixed.source) == (cny(15000), c.PRICE_SOURCE_CHANNEL_FIXED)

    await stub.SetListPrice(
        cat.SetListPriceRequest(request_id=rid(), sku_code=sku, list_price=cny(20999)), timeout=5
    )
    assert (await price(catalog, sku, other, now)).price == cny(20999)
    changes = await catalog.events(events_pb2.PriceChangedEvent, sku)
    assert [e.WhichOneof("change") for e in changes] == [
        "regional_price",
        "channel_rule",
        "channel_rule",
        "list_price_of",
    ]
    assert changes[-1].list_price_of.list_price == cny(20999)


async def test_price_bad_input_and_unknowns(catalog, unique):
    stub = catalog.stub
    channel = f"PB{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    sku = f"PB{unique}"
    await make_sku(stub, sku, sku, list_price=1000)
    await make_sku(stub, f"NP{unique}", f"NP{unique}")  # no list price
    await expect_invalid(set_rule(catalog, channel, sku), "rule")
    await expect_invalid(
        set_rule(catalog, channel, sku, percentage_of_list_bp=-5), "rule.percentage_of_list_bp"
    )
    await expect_invalid(
        set_rule(
            catalog, channel, sku, fixed_price=money_pb2.Money(currency_code="USD", amount_minor=5)
        ),
        "rule.fixed_price.currency_code",
    )
    await expect_error(
        set_rule(catalog, f"NOPE{unique}", sku, fixed_price=cny(5)), grpc.StatusCode.NOT_FOUND
    )
    await expect_invalid(
        stub.SetListPrice(cat.SetListPriceRequest(request_id=rid(), sku_code=sku), timeout=5),
        "list_price",
    )
    await expect_invalid(
        stub.SetListPrice(
            cat.SetListPriceRequest(
                request_id=rid(),
                sku_code=sku,
                list_price=money_pb2.Money(currency_code="USD", amount_minor=900),
            ),
            timeout=5,
        ),
        "list_price.currency_code",
    )
    await expect_error(
        price(catalog, f"NP{unique}", channel, datetime.now(UTC)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_error(
        price(catalog, f"NONE{unique}", channel, datetime.now(UTC)), grpc.StatusCode.NOT_FOUND
    )
    await expect_invalid(
        stub.ResolveCartPrices(cat.ResolveCartPricesRequest(channel_id=channel), timeout=5), "lines"
    )
    # nothing was written by the refused calls
    assert (await price(catalog, sku, channel, datetime.now(UTC))).source == c.PRICE_SOURCE_LIST


async def promotion(
    catalog, promotion_id: str, channels: list[str], items: dict[str, int], start, end
):
    return await catalog.stub.DeclarePromotion(
        cat.DeclarePromotionRequest(
            request_id=rid(),
            promotion=c.Promotion(
                promotion_id=promotion_id,
                name="Double 11",
                channel_ids=channels,
                items=[c.PromotionItem(sku_code=s, price=cny(p)) for s, p in items.items()],
                start_time=ts(start),
                end_time=ts(end),
            ),
        ),
        timeout=5,
    )


async def test_same_price_refusal_and_the_promotion_exception_at_its_edges(catalog, unique):
    stub = catalog.stub
    online, store = f"SO{unique}", f"SF{unique}"
    await make_channel(stub, online, c.CHANNEL_KIND_ONLINE)
    await make_channel(stub, store, c.CHANNEL_KIND_OFFLINE)
    brand = f"SP{unique}"
    await make_brand(stub, brand, same_price=True)
    await make_style(stub, f"SP{unique}", brand=brand)
    sku = f"SP{unique}-1"
    await make_sku(stub, sku, f"SP{unique}", list_price=29900)

    error = await expect_error(
        set_rule(catalog, online, sku, fixed_price=cny(25900)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "same price online and offline" in (error.details() or "")
    await expect_error(
        set_rule(catalog, online, sku, percentage_of_list_bp=9000),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await set_rule(catalog, online, sku, fixed_price=cny(29900))  # equal to the store price: fine
    assert await catalog.events(events_pb2.PriceChangedEvent, sku) != []

    await promotion(catalog, f"PR{unique}", [online], {sku: 25900}, START, END)
    at_edges = {
        "before start": START - US,
        "start": START,
        "before end": END - US,
        "end": END,
    }
    online_prices = {k: await price(catalog, sku, online, t) for k, t in at_edges.items()}
    assert {k: (p.price.amount_minor, p.source) for k, p in online_prices.items()} == {
        "before start": (29900, c.PRICE_SOURCE_LIST),
        "start": (25900, c.PRICE_SOURCE_PROMOTION),
        "before end": (25900, c.PRICE_SOURCE_PROMOTION),
        "end": (29900, c.PRICE_SOURCE_LIST),
    }
    assert online_prices["start"].promotion_id == f"PR{unique}"
    # the store is not in the promotion: it keeps the store price throughout
    assert (await price(catalog, sku, store, START)).price == cny(29900)

    # a promotion of the same channel and SKU may not overlap; back to back is fine
    await expect_error(
        promotion(
            catalog, f"PX{unique}", [online, store], {sku: 1}, END - US, END + timedelta(days=1)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await promotion(catalog, f"PY{unique}", [online], {sku: 24900}, END, END + timedelta(days=1))
    assert (await price(catalog, sku, online, END)).promotion_id == f"PY{unique}"
    await expect_invalid(
        promotion(catalog, f"PZ{unique}", [online], {sku: 1}, END, END), "promotion.end_time"
    )
    await expect_error(
        promotion(
            catalog,
            f"PR{unique}",
            [online],
            {sku: 1},
            START,
            END,
        ),  # an existing id: ALREADY_EXISTS, even though the window also overlaps
        grpc.StatusCode.ALREADY_EXISTS,
    )

    # turning the policy off lets channel rules apply again
    await stub.UpdateBrandPolicy(
        cat.UpdateBrandPolicyRequest(
            request_id=rid(), brand_code=brand, same_price_online_offline=False
        ),
        timeout=5,
    )
    [policy] = await catalog.events(events_pb2.BrandPolicyChangedEvent, brand)
    assert policy.brand.same_price_online_offline is False
    await set_rule(catalog, online, sku, fixed_price=cny(25900))
    assert (await price(catalog, sku, online, START - US)).source == c.PRICE_SOURCE_CHANNEL_FIXED


async def test_cart_prices_in_one_call(catalog, unique):
    stub = catalog.stub
    channel = f"CA{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    skus = [f"CA{unique}-{i}" for i in range(3)]
    for i, code in enumerate(skus):
        await make_sku(stub, code, f"CA{unique}", list_price=1000 * (i + 1))
    await set_rule(catalog, channel, skus[1], percentage_of_list_bp=5000)
    await promotion(catalog, f"CP{unique}", [channel], {skus[2]: 99}, START, END)
    await stub.SetAssortment(
        cat.SetAssortmentRequest(
            request_id=rid(),
            channel_id=channel,
            entries=[
                # sellable at START: the window's start is inclusive
                c.AssortmentEntry(
                    sku_code=skus[0], kind=c.ASSORTMENT_KIND_STANDARD, sellable_from=ts(START)
                ),
                # no longer sellable at START: the window's end is exclusive
                c.AssortmentEntry(
                    sku_code=skus[1], kind=c.ASSORTMENT_KIND_STANDARD, sellable_until=ts(START)
                ),
            ],
        ),
        timeout=5,
    )
    response = await stub.ResolveCartPrices(
        cat.ResolveCartPricesRequest(
            channel_id=channel,
            at=ts(START),
            lines=[cat.CartLine(sku_code=s) for s in [skus[2], skus[0], skus[1], skus[0]]],
        ),
        timeout=5,
    )
    assert [(p.sku_code, p.price.amount_minor, p.source, p.sellable) for p in response.prices] == [
        (skus[2], 99, c.PRICE_SOURCE_PROMOTION, False),
        (skus[0], 1000, c.PRICE_SOURCE_LIST, True),
        (skus[1], 1000, c.PRICE_SOURCE_CHANNEL_PERCENTAGE, False),
        (skus[0], 1000, c.PRICE_SOURCE_LIST, True),
    ]


def usd(amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="USD", amount_minor=amount)


async def test_a_sku_is_priced_in_one_currency_even_before_it_has_a_list_price(catalog, unique):
    stub = catalog.stub
    channel = f"CU{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    sku, other = f"CU{unique}", f"CU{unique}-2"
    await make_sku(stub, sku, sku)  # no list price yet
    await make_sku(stub, other, sku)
    # the first price, a regional one, sets the SKU's currency
    await stub.SetRegionalPrice(
        cat.SetRegionalPriceRequest(
            request_id=rid(),
            regional_price=c.RegionalPrice(sku_code=sku, region_code="US-CA", price=usd(900)),
        ),
        timeout=5,
    )
    await expect_invalid(
        stub.SetListPrice(
            cat.SetListPriceRequest(request_id=rid(), sku_code=sku, list_price=cny(1000)),
            timeout=5,
        ),
        "list_price.currency_code",
    )
    await expect_invalid(
        set_rule(catalog, channel, sku, fixed_price=cny(800)), "rule.fixed_price.currency_code"
    )
    await expect_invalid(
        stub.SetRegionalPrice(
            cat.SetRegionalPriceRequest(
                request_id=rid(),
                regional_price=c.RegionalPrice(sku_code=sku, region_code="CN-31", price=cny(7)),
            ),
            timeout=5,
        ),
        "regional_price.price.currency_code",
    )
    await expect_invalid(
        promotion(catalog, f"CUP{unique}", [channel], {other: 5, sku: 5}, START, END),
        "promotion.items[1].price.currency_code",
    )
    # the promotion was refused as a whole: its other SKU is still free to take any currency
    await stub.SetListPrice(
        cat.SetListPriceRequest(request_id=rid(), sku_code=other, list_price=cny(100)), timeout=5
    )
    # in the SKU's own currency everything is accepted
    await stub.SetListPrice(
        cat.SetListPriceRequest(request_id=rid(), sku_code=sku, list_price=usd(1000)), timeout=5
    )
    await set_rule(catalog, channel, sku, fixed_price=usd(950))
    resolved = await price(catalog, sku, channel, datetime.now(UTC))
    assert (resolved.price, resolved.source) == (usd(950), c.PRICE_SOURCE_CHANNEL_FIXED)

    # a promotion price alone sets the currency too
    lone = f"CU{unique}-3"
    await make_sku(stub, lone, sku)
    await promotion(catalog, f"CUQ{unique}", [channel], {lone: 5}, START, END)
    await expect_invalid(
        stub.SetListPrice(
            cat.SetListPriceRequest(request_id=rid(), sku_code=lone, list_price=usd(10)),
            timeout=5,
        ),
        "list_price.currency_code",
    )


async def test_out_of_range_timestamps_are_invalid_argument_naming_the_field(catalog, unique):
    stub = catalog.stub
    channel = f"TS{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    sku = f"TS{unique}"
    await make_sku(stub, sku, sku, list_price=1000)
    too_late = Timestamp(seconds=253402300800)  # 10000-01-01
    too_early = Timestamp(seconds=-62135596801)  # before 0001-01-01
    bad_nanos = Timestamp(seconds=0, nanos=-1)
    for stamp in (too_late, too_early, bad_nanos):
        await expect_invalid(
            stub.ResolvePrice(
                cat.ResolvePriceRequest(sku_code=sku, channel_id=channel, at=stamp), timeout=5
            ),
            "at",
        )
        await expect_invalid(
            stub.ResolveCartPrices(
                cat.ResolveCartPricesRequest(
                    channel_id=channel, at=stamp, lines=[cat.CartLine(sku_code=sku)]
                ),
                timeout=5,
            ),
            "at",
        )
    for field in ("start_time", "end_time"):
        request = cat.DeclarePromotionRequest(
            request_id=rid(),
            promotion=c.Promotion(
                promotion_id=f"TSP{unique}",
                name="Out of range",
                channel_ids=[channel],
                items=[c.PromotionItem(sku_code=sku, price=cny(1))],
                start_time=ts(START),
                end_time=ts(END),
            ),
        )
        getattr(request.promotion, field).CopyFrom(too_late)
        await expect_invalid(stub.DeclarePromotion(request, timeout=5), f"promotion.{field}")
    # nothing was declared: the id is still free
    await promotion(catalog, f"TSP{unique}", [channel], {sku: 1}, START, END)
    # the edges of the range are accepted
    edge = await stub.ResolvePrice(
        cat.ResolvePriceRequest(
            sku_code=sku, channel_id=channel, at=Timestamp(seconds=253402300799)
        ),
        timeout=5,
    )
    assert edge.price.source == c.PRICE_SOURCE_LIST
