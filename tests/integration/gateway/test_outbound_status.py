"""Outbound order-status, price and listing pushes from real platform events (order service,
catalog) to a channel's endpoint (the fake external channel on 127.0.0.1): shipped with its
tracking number (each shipment of a split order its own), ready for pickup, cancelled; price
and listing changes; retries with backoff, dead letters after the limit and retry, the lag
gauge of a channel that is down, and reconciliation once it is back."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc
from omni.common.v1 import envelope_pb2, money_pb2
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.order.v1 import events_pb2 as order_events
from omni.order.v1 import order_pb2 as ord_pb
from omni.order.v1 import order_service_pb2 as ord_svc
from prometheus_client import REGISTRY

from libs.consumer import Delivery
from libs.testing.services import eventually
from libs.unit_of_work import UnitOfWorkFactory
from services.gateway.entrypoints import consumers
from tests.integration.gateway.conftest import Key, Platform, rid

BACKOFF = 0.05  # OMNI_GATEWAY_PUSH_BACKOFF_SECONDS of the integration platform
MAX_ATTEMPTS = 3  # OMNI_GATEWAY_PUSH_MAX_ATTEMPTS


def pushes(p: Platform, ch: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in p.fake.for_channel(ch) if r["kind"] == kind]


def statuses(p: Platform, ch: str) -> list[dict[str, Any]]:
    return [r["data"] for r in pushes(p, ch, "order_status")]


def lag_age(channel: str) -> float | None:
    return REGISTRY.get_sample_value(
        "omni_gateway_oldest_pending_push_age_seconds", {"channel": channel}
    )


async def mall_channel(p: Platform, unique: str) -> tuple[str, Key]:
    ch = f"MALL-{unique}"
    return ch, await p.channel(ch, "web_mall", push=True)


async def sku_at(p: Platform, code: str, store: str, quantity: int = 5) -> str:
    await p.sku(code)
    await p.tracked(code)
    await p.receive(store, code, quantity)
    return code


def mall_body(order_no: str, skus: list[str], fulfilment: str = "express", store: str = "") -> dict:
    body: dict[str, Any] = {
        "order_no": order_no,
        "member_id": "m-1",
        "fulfilment": fulfilment,
        "items": [{"sku_code": s, "quantity": 1, "unit_price": 5000} for s in skus],
        "total": 5000 * len(skus),
    }
    if fulfilment == "pickup":
        body["pickup_store_id"] = store
    else:
        body["delivery_address"] = {"province": "Shanghai", "city": "Shanghai", "street": "1 Rd"}
    return body


async def place(
    p: Platform, key: Key, ch: str, body: dict
) -> tuple[str, list[ord_pb.FulfilmentOrder]]:
    answer = await p.post(key, f"/v1/channels/{ch}/mall/orders", body)
    assert answer.status_code == 201, answer.text
    order_id = str(answer.json()["order_id"])

    async def allocated() -> list[ord_pb.FulfilmentOrder]:
        got = await p.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
        assert got.fulfilment_orders
        return list(got.fulfilment_orders)

    return order_id, await eventually(allocated, timeout=30)


async def test_each_shipment_of_a_split_order_is_pushed_with_its_tracking(
    platform: Platform, unique: str
) -> None:
    ch, key = await mall_channel(platform, unique)
    store_a, store_b = f"SA-{unique}", f"SB-{unique}"
    await platform.location(store_a, [ch])
    await platform.location(store_b, [ch])
    sku_a = await sku_at(platform, f"GW-{unique}-A", store_a)
    sku_b = await sku_at(platform, f"GW-{unique}-B", store_b)
    order_id, legs = await place(platform, key, ch, mall_body(f"W{unique}", [sku_a, sku_b]))
    assert sorted(f.location_id for f in legs) == [store_a, store_b]
    for leg in legs:
        await platform.order.ShipFulfilment(
            ord_svc.ShipFulfilmentRequest(
                request_id=rid(), fulfilment_id=leg.fulfilment_id, assignee=f"SF-{leg.location_id}"
            )
        )

    async def both_tracked() -> None:
        shipped = [s for s in statuses(platform, ch) if s["status"] == "shipped"]
        assert sorted(s["tracking"] for s in shipped) == [f"SF-{store_a}", f"SF-{store_b}"]
        assert {s["fulfilment_id"] for s in shipped} == {f.fulfilment_id for f in legs}

    await eventually(both_tracked, timeout=30)
    subjects = {r["subject"] for r in pushes(platform, ch, "order_status")}
    assert subjects >= {f"{order_id}/{f.fulfilment_id}" for f in legs}


def shipped_event(
    order_id: str, fulfilment_id: str, tracking: str
) -> order_events.FulfilmentShippedEvent:
    return order_events.FulfilmentShippedEvent(
        fulfilment_order=ord_pb.FulfilmentOrder(
            fulfilment_id=fulfilment_id, order_id=order_id, location_id="L", assignee=tracking
        )
    )


async def test_two_shipments_queued_together_do_not_overwrite_each_other(
    platform: Platform, unique: str
) -> None:
    """The deterministic form of the above: both shipment events applied before the pusher
    runs (one transaction) still give two pushes, one per tracking number."""
    ch, key = await mall_channel(platform, unique)
    store = f"SA-{unique}"
    await platform.location(store, [ch])
    sku = await sku_at(platform, f"GW-{unique}-A", store)
    order_id, _ = await place(platform, key, ch, mall_body(f"W{unique}", [sku]))
    envelope = envelope_pb2.EventEnvelope()
    envelope.occurred_at.GetCurrentTime()
    uow_factory = UnitOfWorkFactory(platform.db, "gateway", "unused", None)
    async with uow_factory() as uow:
        await consumers.on_fulfilment_shipped.apply(
            uow,
            [
                Delivery(shipped_event(order_id, "F1", "T-1"), envelope, {}),
                Delivery(shipped_event(order_id, "F2", "T-2"), envelope, {}),
            ],
        )
        await uow.commit()

    async def both() -> None:
        tracked = {s["tracking"] for s in statuses(platform, ch) if s["status"] == "shipped"}
        assert tracked == {"T-1", "T-2"}

    await eventually(both)


async def test_ready_for_pickup_and_cancelled_are_pushed(platform: Platform, unique: str) -> None:
    ch, key = await mall_channel(platform, unique)
    store = f"SA-{unique}"
    await platform.location(store, [ch])
    sku = await sku_at(platform, f"GW-{unique}-A", store)
    pickup_id, [leg] = await place(
        platform, key, ch, mall_body(f"P{unique}", [sku], "pickup", store)
    )
    await platform.order.MarkReadyForPickup(
        ord_svc.MarkReadyForPickupRequest(request_id=rid(), fulfilment_id=leg.fulfilment_id)
    )
    cancel_id, _ = await place(platform, key, ch, mall_body(f"C{unique}", [sku]))
    await platform.order.CancelOrder(
        ord_svc.CancelOrderRequest(request_id=rid(), order_id=cancel_id, reason="customer")
    )

    async def pushed() -> None:
        by_order = {s["channel_order_id"]: s for s in statuses(platform, ch)}
        assert by_order[f"P{unique}"]["status"] == "ready_for_pickup"
        assert by_order[f"P{unique}"]["pickup_store_id"] == store
        assert by_order[f"C{unique}"] == {
            "type": "order_status",
            "channel_order_id": f"C{unique}",
            "status": "cancelled",
            "reason": "customer",
        }

    await eventually(pushed, timeout=30)
    got = await platform.gateway.GetChannelOrder(
        gw_svc.GetChannelOrderRequest(channel_id=ch, channel_order_id=f"P{unique}")
    )
    assert got.order.order_id == pickup_id and got.order.status == "ready_for_pickup"


async def test_price_and_listing_changes_are_pushed(platform: Platform, unique: str) -> None:
    ch, _ = await mall_channel(platform, unique)
    sku = f"GW-{unique}-P"
    await platform.sku(sku, price=9900)
    await platform.catalog.SetChannelPriceRule(
        cat_svc.SetChannelPriceRuleRequest(
            request_id=rid(),
            rule=cat.ChannelPriceRule(
                channel_id=ch,
                sku_code=sku,
                fixed_price=money_pb2.Money(currency_code="CNY", amount_minor=8800),
            ),
        )
    )

    async def priced() -> None:
        prices = [r for r in pushes(platform, ch, "price") if r["subject"] == sku]
        assert prices and prices[-1]["data"]["price_minor"] == 8800
        assert prices[-1]["data"]["currency"] == "CNY"

    await eventually(priced, timeout=30)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    begin, end = Timestamp(), Timestamp()
    begin.FromDatetime(start)
    end.FromDatetime(start + timedelta(days=7))
    await platform.catalog.SetAssortment(
        cat_svc.SetAssortmentRequest(
            request_id=rid(),
            channel_id=ch,
            entries=[
                cat.AssortmentEntry(
                    sku_code=sku,
                    kind=cat.ASSORTMENT_KIND_ONLINE_ONLY,
                    sellable_from=begin,
                    sellable_until=end,
                )
            ],
        )
    )

    async def listed() -> None:
        listings = [r for r in pushes(platform, ch, "listing") if r["subject"] == sku]
        assert listings
        data = listings[-1]["data"]
        assert data["type"] == "listing" and data["sku_code"] == sku
        assert data["sellable_from"] == start.replace(tzinfo=None).isoformat() + "Z"

    await eventually(listed, timeout=30)


async def test_retries_back_off_exponentially(platform: Platform, unique: str) -> None:
    ch, _ = await mall_channel(platform, unique)
    platform.fake.fail_next[ch] = MAX_ATTEMPTS - 1
    sku = f"GW-{unique}-P"
    await platform.sku(sku, price=9900)
    await platform.catalog.SetListPrice(
        cat_svc.SetListPriceRequest(
            request_id=rid(),
            sku_code=sku,
            list_price=money_pb2.Money(currency_code="CNY", amount_minor=7700),
        )
    )

    async def delivered() -> None:
        prices = [r for r in pushes(platform, ch, "price") if r["subject"] == sku]
        assert prices and prices[-1]["data"]["price_minor"] == 7700

    await eventually(delivered, timeout=30)
    assert platform.fake.failures[ch] == MAX_ATTEMPTS - 1
    times = platform.fake.attempts[ch]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Each wait is at least base * 2^(n-1) after the n-th failure (lower bounds only).
    assert len(gaps) >= MAX_ATTEMPTS - 1
    for n, gap in enumerate(gaps[: MAX_ATTEMPTS - 1], start=1):
        assert gap >= BACKOFF * 2 ** (n - 1) * 0.9, gaps


async def test_dead_letter_then_retry_of_an_order_status_push(
    platform: Platform, unique: str
) -> None:
    ch, key = await mall_channel(platform, unique)
    store = f"SA-{unique}"
    await platform.location(store, [ch])
    sku = await sku_at(platform, f"GW-{unique}-A", store)
    order_id, [leg] = await place(platform, key, ch, mall_body(f"W{unique}", [sku]))

    async def settled() -> None:
        # The receipt and the order's hold were pushed (5, then 4 available).
        stock = [r for r in pushes(platform, ch, "stock") if r["subject"] == sku]
        assert stock and stock[-1]["data"]["available"] == 4

    await eventually(settled, timeout=30)
    platform.fake.fail_next[ch] = 1000
    await platform.order.ShipFulfilment(
        ord_svc.ShipFulfilmentRequest(
            request_id=rid(), fulfilment_id=leg.fulfilment_id, assignee="YT-778899"
        )
    )

    async def dead() -> gw.Push:
        listed = await platform.gateway.ListDeadPushes(gw_svc.ListDeadPushesRequest(channel_id=ch))
        found = [p for p in listed.pushes if p.kind == gw.PUSH_KIND_ORDER_STATUS]
        assert found
        return found[0]

    push = await eventually(dead, timeout=30)
    assert push.attempts == MAX_ATTEMPTS and "HTTP 500" in push.last_error
    assert push.subject == f"{order_id}/{leg.fulfilment_id}"

    async def lagging() -> None:
        age = lag_age(ch)
        assert age is not None and age > 0

    await eventually(lagging)
    platform.fake.fail_next[ch] = 0
    # Every dead push of the channel goes again (the shipment's stock change died too).
    listed = await platform.gateway.ListDeadPushes(gw_svc.ListDeadPushesRequest(channel_id=ch))
    for each in listed.pushes:
        await platform.gateway.RetryPush(
            gw_svc.RetryPushRequest(request_id=rid(), push_id=each.push_id)
        )

    async def delivered() -> None:
        shipped = [s for s in statuses(platform, ch) if s["status"] == "shipped"]
        assert shipped and shipped[-1]["tracking"] == "YT-778899"

    await eventually(delivered, timeout=30)

    async def caught_up() -> None:
        assert lag_age(ch) == 0

    await eventually(caught_up)


async def test_channel_down_shows_lag_then_reconciliation_repairs_it(
    platform: Platform, unique: str
) -> None:
    ch, _ = await mall_channel(platform, unique)
    store = f"SA-{unique}"
    await platform.location(store, [ch])
    sku = f"GW-{unique}-S"
    await platform.sku(sku)
    await platform.tracked(sku)
    platform.fake.fail_next[ch] = 1000
    await platform.receive(store, sku, 9)

    async def dead() -> None:
        listed = await platform.gateway.ListDeadPushes(gw_svc.ListDeadPushesRequest(channel_id=ch))
        assert [p.subject for p in listed.pushes] == [sku]

    await eventually(dead, timeout=30)

    # The channel never acknowledged: the gauge shows the age of that change, and grows.
    async def positive() -> float:
        age = lag_age(ch)
        assert age is not None and age > 0
        return age

    first = await eventually(positive)

    async def growing() -> None:
        now = lag_age(ch)
        assert now is not None and now > first

    await eventually(growing)
    platform.fake.fail_next[ch] = 0
    result = await platform.gateway.ReconcileStock(
        gw_svc.ReconcileStockRequest(
            request_id=rid(), channel_id=ch, channel_stock=[gw.SkuStock(sku_code=sku, quantity=0)]
        )
    )
    assert [(r.sku_code, r.quantity) for r in result.repaired] == [(sku, 9)]

    async def repaired() -> None:
        stock = [r for r in pushes(platform, ch, "stock") if r["subject"] == sku]
        assert stock and stock[-1]["data"]["available"] == 9
        # The delivered push supersedes the dead one: the channel is up to date.
        assert lag_age(ch) == 0

    await eventually(repaired, timeout=30)
