"""Channel records, assortments with kinds and windows, and channel SKU mappings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import events_pb2

from tests.integration.catalog.helpers import (
    expect_error,
    expect_invalid,
    make_brand,
    make_channel,
    make_sku,
    make_style,
    rid,
    ts,
)


def entry(sku: str, kind: int = c.ASSORTMENT_KIND_STANDARD, **extra) -> c.AssortmentEntry:
    return c.AssortmentEntry(sku_code=sku, kind=kind, **extra)  # type: ignore[arg-type]


async def test_assortment_kinds_against_channel_kinds(catalog, unique):
    stub = catalog.stub
    online, store = f"ON{unique}", f"OFF{unique}"
    await make_channel(stub, online, c.CHANNEL_KIND_ONLINE)
    await make_channel(stub, store, c.CHANNEL_KIND_OFFLINE)
    await make_brand(stub, f"WEB{unique}", online_only=True)
    await make_style(stub, f"WS{unique}", brand=f"WEB{unique}")
    await make_sku(stub, f"WS{unique}-1", f"WS{unique}")
    await make_sku(stub, f"A{unique}", f"A{unique}")

    async def put(channel: str, *entries: c.AssortmentEntry):
        return await stub.SetAssortment(
            cat.SetAssortmentRequest(request_id=rid(), channel_id=channel, entries=list(entries)),
            timeout=5,
        )

    refused = [
        (store, entry(f"A{unique}", c.ASSORTMENT_KIND_ONLINE_ONLY)),
        (store, entry(f"A{unique}", c.ASSORTMENT_KIND_CLEARANCE_ONLINE_ONLY)),
        (online, entry(f"A{unique}", c.ASSORTMENT_KIND_OFFLINE_ONLY)),
        (store, entry(f"WS{unique}-1")),  # the brand is sold online only
    ]
    for channel, e in refused:
        error = await expect_error(put(channel, e), grpc.StatusCode.FAILED_PRECONDITION)
        assert f"{e.sku_code}" in (error.details() or "")
    # all or nothing: one refused entry keeps the good one out too
    await expect_error(
        put(store, entry(f"A{unique}"), entry(f"WS{unique}-1")), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert await catalog.events(events_pb2.AssortmentChangedEvent, f"A{unique}") == []

    start = datetime(2026, 7, 1, tzinfo=UTC)
    done = await put(
        online,
        entry(
            f"A{unique}",
            c.ASSORTMENT_KIND_CLEARANCE_ONLINE_ONLY,
            sellable_from=ts(start),
            sellable_until=ts(start + timedelta(days=30)),
        ),
        entry(f"WS{unique}-1", c.ASSORTMENT_KIND_ONLINE_ONLY),
    )
    assert [e.channel_id for e in done.entries] == [online, online]
    await put(store, entry(f"A{unique}", c.ASSORTMENT_KIND_OFFLINE_ONLY))
    events = await catalog.events(events_pb2.AssortmentChangedEvent, f"A{unique}")
    assert [(e.entry.channel_id, e.entry.kind) for e in events] == [
        (online, c.ASSORTMENT_KIND_CLEARANCE_ONLINE_ONLY),
        (store, c.ASSORTMENT_KIND_OFFLINE_ONLY),
    ]
    assert events[0].entry.sellable_until == ts(start + timedelta(days=30))


async def test_discontinued_sku_cannot_be_listed_anew(catalog, unique):
    stub = catalog.stub
    channel = f"DC{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    await make_sku(stub, f"X{unique}-1", f"X{unique}")
    await make_sku(stub, f"X{unique}-2", f"X{unique}")
    await stub.SetAssortment(
        cat.SetAssortmentRequest(
            request_id=rid(), channel_id=channel, entries=[entry(f"X{unique}-1")]
        ),
        timeout=5,
    )
    for code in (f"X{unique}-1", f"X{unique}-2"):
        await stub.DiscontinueSku(
            cat.DiscontinueSkuRequest(request_id=rid(), sku_code=code), timeout=5
        )
    error = await expect_error(
        stub.SetAssortment(
            cat.SetAssortmentRequest(
                request_id=rid(), channel_id=channel, entries=[entry(f"X{unique}-2")]
            ),
            timeout=5,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "discontinued" in (error.details() or "")
    # the existing listing may still be ended
    await stub.SetAssortment(
        cat.SetAssortmentRequest(
            request_id=rid(),
            channel_id=channel,
            entries=[entry(f"X{unique}-1", sellable_until=ts(datetime.now(UTC)))],
        ),
        timeout=5,
    )


async def test_assortment_bad_input_and_unknowns(catalog, unique):
    stub = catalog.stub
    channel = f"BI{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    await make_sku(stub, f"BI{unique}", f"BI{unique}")
    now = datetime.now(UTC)

    def request(*entries: c.AssortmentEntry, channel_id: str = channel) -> cat.SetAssortmentRequest:
        return cat.SetAssortmentRequest(
            request_id=rid(), channel_id=channel_id, entries=list(entries)
        )

    await expect_invalid(
        stub.SetAssortment(
            request(entry(f"BI{unique}", sellable_from=ts(now), sellable_until=ts(now))), timeout=5
        ),
        "entries[0].sellable_until",
    )
    await expect_invalid(
        stub.SetAssortment(request(entry(f"BI{unique}", c.ASSORTMENT_KIND_UNSPECIFIED)), timeout=5),
        "entries[0].kind",
    )
    await expect_invalid(
        stub.SetAssortment(request(entry(f"BI{unique}"), entry(f"BI{unique}")), timeout=5),
        "entries[1].sku_code",
    )
    await expect_error(
        stub.SetAssortment(request(entry(f"BI{unique}"), channel_id=f"NOPE{unique}"), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stub.SetAssortment(request(entry(f"NOPE{unique}")), timeout=5), grpc.StatusCode.NOT_FOUND
    )
    await expect_invalid(
        stub.RegisterChannel(
            cat.RegisterChannelRequest(
                request_id=rid(), channel=c.Channel(channel_id=f"K{unique}")
            ),
            timeout=5,
        ),
        "channel.kind",
    )
    # the same channel again with the same kind is fine; with another kind it is not
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    await expect_error(
        make_channel(stub, channel, c.CHANNEL_KIND_OFFLINE), grpc.StatusCode.ALREADY_EXISTS
    )


async def test_channel_sku_mappings_resolve_both_ways_in_batch(catalog, unique):
    stub = catalog.stub
    tmall, jd = f"TM{unique}", f"JD{unique}"
    await make_channel(stub, tmall, c.CHANNEL_KIND_ONLINE)
    await make_channel(stub, jd, c.CHANNEL_KIND_ONLINE)
    skus = [f"MS{unique}-{i}" for i in range(3)]
    for code in skus:
        await make_sku(stub, code, f"MS{unique}")

    def mapping(sku: str, external: str, item: str = "") -> c.ChannelSkuMapping:
        return c.ChannelSkuMapping(sku_code=sku, external_sku_id=external, external_item_id=item)

    request = cat.MapChannelSkusRequest(
        request_id=rid(),
        channel_id=tmall,
        mappings=[mapping(skus[0], "tm-1", "item-9"), mapping(skus[1], "tm-2", "item-9")],
    )
    await stub.MapChannelSkus(request, timeout=5)
    # the same external id on another channel is another mapping
    await stub.MapChannelSkus(
        cat.MapChannelSkusRequest(
            request_id=rid(), channel_id=jd, mappings=[mapping(skus[2], "tm-1")]
        ),
        timeout=5,
    )
    # the same mapping again (new request) is accepted; a different one is ALREADY_EXISTS
    request.request_id = rid()
    await stub.MapChannelSkus(request, timeout=5)
    for conflicting in (mapping(skus[2], "tm-1"), mapping(skus[0], "tm-3")):
        await expect_error(
            stub.MapChannelSkus(
                cat.MapChannelSkusRequest(
                    request_id=rid(), channel_id=tmall, mappings=[conflicting]
                ),
                timeout=5,
            ),
            grpc.StatusCode.ALREADY_EXISTS,
        )
    await expect_invalid(
        stub.MapChannelSkus(
            cat.MapChannelSkusRequest(
                request_id=rid(), channel_id=tmall, mappings=[mapping(skus[2], "")]
            ),
            timeout=5,
        ),
        "mappings[0].external_sku_id",
    )

    resolved = await stub.ResolveChannelSkus(
        cat.ResolveChannelSkusRequest(
            channel_id=tmall,
            external_sku_ids=["tm-2", "tm-1", "tm-404"],
            sku_codes=[skus[0], skus[2]],
        ),
        timeout=5,
    )
    pairs = {(m.external_sku_id, m.sku_code, m.external_item_id) for m in resolved.mappings}
    assert pairs == {("tm-1", skus[0], "item-9"), ("tm-2", skus[1], "item-9")}
    assert list(resolved.unknown_external_sku_ids) == ["tm-404"]
    assert list(resolved.unmapped_sku_codes) == [skus[2]]


async def test_an_online_only_brand_is_never_sellable_offline_even_when_listed_before(
    catalog, unique
):
    stub = catalog.stub
    online, store = f"BON{unique}", f"BOF{unique}"
    await make_channel(stub, online, c.CHANNEL_KIND_ONLINE)
    await make_channel(stub, store, c.CHANNEL_KIND_OFFLINE)
    brand = f"BO{unique}"
    await make_brand(stub, brand, same_price=True)
    await make_style(stub, f"BOS{unique}", brand=brand)
    sku, later = f"BOS{unique}-1", f"BOS{unique}-2"
    for code in (sku, later):
        await make_sku(stub, code, f"BOS{unique}", list_price=5000)
    for channel in (online, store):
        await stub.SetAssortment(
            cat.SetAssortmentRequest(request_id=rid(), channel_id=channel, entries=[entry(sku)]),
            timeout=5,
        )

    async def sellable(channel: str) -> bool:
        got = await stub.ResolvePrice(
            cat.ResolvePriceRequest(sku_code=sku, channel_id=channel), timeout=5
        )
        return got.price.sellable

    assert (await sellable(online), await sellable(store)) == (True, True)

    # only online_only is given: the same-price policy keeps its value
    turned = await stub.UpdateBrandPolicy(
        cat.UpdateBrandPolicyRequest(request_id=rid(), brand_code=brand, online_only=True),
        timeout=5,
    )
    assert (turned.brand.online_only, turned.brand.same_price_online_offline) == (True, True)
    # the store's listing from before stays stored but no longer sells
    assert (await sellable(online), await sellable(store)) == (True, False)
    # a new offline listing is refused; the existing one may still be changed (e.g. ended)
    await expect_error(
        stub.SetAssortment(
            cat.SetAssortmentRequest(request_id=rid(), channel_id=store, entries=[entry(later)]),
            timeout=5,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await stub.SetAssortment(
        cat.SetAssortmentRequest(
            request_id=rid(),
            channel_id=store,
            entries=[entry(sku, sellable_until=ts(datetime(2030, 1, 1, tzinfo=UTC)))],
        ),
        timeout=5,
    )
    assert await sellable(store) is False

    # turning it off makes the store listing count again, same-price still untouched
    back = await stub.UpdateBrandPolicy(
        cat.UpdateBrandPolicyRequest(request_id=rid(), brand_code=brand, online_only=False),
        timeout=5,
    )
    assert (back.brand.online_only, back.brand.same_price_online_offline) == (False, True)
    assert await sellable(store) is True
    # a request naming no policy changes nothing and announces nothing new
    same = await stub.UpdateBrandPolicy(
        cat.UpdateBrandPolicyRequest(request_id=rid(), brand_code=brand), timeout=5
    )
    assert (same.brand.online_only, same.brand.same_price_online_offline) == (False, True)
    assert len(await catalog.events(events_pb2.BrandPolicyChangedEvent, brand)) == 2


async def test_out_of_range_sellable_window_names_the_entry(catalog, unique):
    stub = catalog.stub
    channel = f"TW{unique}"
    await make_channel(stub, channel, c.CHANNEL_KIND_ONLINE)
    await make_sku(stub, f"TW{unique}", f"TW{unique}")
    for field in ("sellable_from", "sellable_until"):
        bad = entry(f"TW{unique}")
        getattr(bad, field).CopyFrom(Timestamp(seconds=253402300800))
        await expect_invalid(
            stub.SetAssortment(
                cat.SetAssortmentRequest(
                    request_id=rid(), channel_id=channel, entries=[entry(f"TW{unique}"), bad]
                ),
                timeout=5,
            ),
            f"entries[1].{field}",
        )
    assert await catalog.events(events_pb2.AssortmentChangedEvent, f"TW{unique}") == []
