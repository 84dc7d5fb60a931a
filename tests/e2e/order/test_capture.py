"""Capture: duplicates by channel order id, bad input, and what is (not) reserved."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from omni.common.v1.money_pb2 import Money
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc

from libs.grpc_errors import field_violations
from libs.testing.services import eventually
from tests.e2e.order.conftest import World, address, capture_request, line


async def test_twenty_concurrent_duplicate_captures_make_one_order(
    world: World, unique: str
) -> None:
    ch = f"dup-{unique}"
    sku = await world.sku(f"DUP-{unique}-1")
    wh = await world.location(f"DW-{unique}", ch)
    await world.stock(wh, sku, 10)

    # Twenty retries of one channel order, each with its own request id (as a channel
    # connector re-sending after timeouts would).
    results = await asyncio.gather(
        *(
            world.order.CaptureOrder(
                capture_request(
                    f"dup-{unique}-{i}",
                    channel_id=ch,
                    channel_order_id=f"TB-{unique}",
                    lines=[line(sku, 2)],
                    delivery_address=address(),
                ),
                timeout=60,
            )
            for i in range(20)
        )
    )
    assert len({r.order.order_id for r in results}) == 1
    assert await world.levels(wh, sku) == (10, 2)
    listed = await world.order.ListOrders(svc.ListOrdersRequest(channel_id=ch), timeout=10)
    assert len(listed.orders) == 1

    # The same channel order id with other content is refused, naming what differs.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.capture(
            f"dup-{unique}-other",
            channel_id=ch,
            channel_order_id=f"TB-{unique}",
            lines=[line(sku, 3)],
            delivery_address=address(),
        )
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "lines[0]" in (refused.value.details() or "")
    assert await world.levels(wh, sku) == (10, 2)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("unknown_sku", "lines[1].sku_code"),
        ("zero_quantity", "lines[0].quantity"),
        ("pickup_without_store", "pickup_store_id"),
        ("same_city_without_coordinates", "delivery_address.latitude"),
        ("no_mode", "fulfilment_mode"),
        ("unknown_pickup_store", "pickup_store_id"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field_and_reserves_nothing(
    world: World, unique: str, case: str, field: str
) -> None:
    ch = f"bad-{unique}"
    sku = await world.sku(f"OK-{unique}-1")
    wh = await world.location(f"BW-{unique}", ch)
    await world.stock(wh, sku, 5)
    fields: dict[str, object] = {
        "channel_id": ch,
        "lines": [line(sku, 1)],
        "delivery_address": address(),
    }
    if case == "unknown_sku":
        fields["lines"] = [line(sku, 1), line(f"NOPE-{unique}", 1)]
    elif case == "zero_quantity":
        fields["lines"] = [line(sku, 0)]
    elif case == "pickup_without_store":
        fields["fulfilment_mode"] = pb.FULFILMENT_MODE_STORE_PICKUP
    elif case == "same_city_without_coordinates":
        fields["fulfilment_mode"] = pb.FULFILMENT_MODE_SAME_CITY_DELIVERY
        fields["delivery_address"] = address(at=None)
    elif case == "no_mode":
        fields["fulfilment_mode"] = pb.FULFILMENT_MODE_UNSPECIFIED
    elif case == "unknown_pickup_store":
        fields["fulfilment_mode"] = pb.FULFILMENT_MODE_STORE_PICKUP
        fields["pickup_store_id"] = f"NOWHERE-{unique}"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await world.capture(f"c-{unique}", **fields)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(bad.value)]
    assert await world.levels(wh, sku) == (5, 0)
    listed = await world.order.ListOrders(svc.ListOrdersRequest(channel_id=ch), timeout=10)
    assert list(listed.orders) == []


async def test_list_orders_filters_and_pages(world: World, unique: str) -> None:
    ch = f"list-{unique}"
    sku = await world.sku(f"LST-{unique}-1")
    store = await world.location(f"LS-{unique}", ch)
    await world.stock(store, sku, 10)
    ids = []
    for i in range(3):
        got = await world.capture(
            f"c{i}-{unique}",
            channel_id=ch,
            channel_kind=pb.CHANNEL_KIND_STORE,
            fulfilment_mode=pb.FULFILMENT_MODE_STORE_SALE,
            selling_store_id=store,
            selling_guide_staff_id=f"G-{unique}" if i < 2 else "",
            payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
            member_id=f"M-{unique}",
            lines=[line(sku, 1)],
        )
        ids.append(got.order.order_id)
    page1 = await world.order.ListOrders(
        svc.ListOrdersRequest(store_id=store, page_size=2), timeout=10
    )
    page2 = await world.order.ListOrders(
        svc.ListOrdersRequest(store_id=store, page_size=2, page_token=page1.next_page_token),
        timeout=10,
    )
    assert [o.order_id for o in [*page1.orders, *page2.orders]] == ids[::-1]
    assert not page2.next_page_token
    by_guide = await world.order.ListOrders(
        svc.ListOrdersRequest(guide_staff_id=f"G-{unique}"), timeout=10
    )
    assert {o.order_id for o in by_guide.orders} == set(ids[:2])
    by_member = await world.order.ListOrders(
        svc.ListOrdersRequest(member_id=f"M-{unique}", status=pb.ORDER_STATUS_COMPLETED),
        timeout=10,
    )
    assert len(by_member.orders) == 3
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await world.order.ListOrders(svc.ListOrdersRequest(page_token="!!"), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_routing_rules_are_versioned_per_channel(world: World, unique: str) -> None:
    ch = f"rules-{unique}"
    for i, priority in enumerate((["A"], ["B", "A"])):
        await world.order.SetRoutingRules(
            svc.SetRoutingRulesRequest(
                request_id=f"r{i}-{unique}",
                rules=pb.RoutingRules(channel_id=ch, location_priority=priority),
            ),
            timeout=10,
        )
    latest = await world.order.GetRoutingRules(
        svc.GetRoutingRulesRequest(channel_id=ch), timeout=10
    )
    first = await world.order.GetRoutingRules(
        svc.GetRoutingRulesRequest(channel_id=ch, version=1), timeout=10
    )
    assert (latest.rules.version, list(latest.rules.location_priority)) == (2, ["B", "A"])
    assert list(first.rules.location_priority) == ["A"]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await world.order.SetRoutingRules(
            svc.SetRoutingRulesRequest(
                request_id=f"bad-{unique}",
                rules=pb.RoutingRules(channel_id=ch, location_priority=["A", "A"]),
            ),
            timeout=10,
        )
    assert [f for f, _ in field_violations(bad.value)] == ["rules.location_priority"]


async def test_channel_priority_breaks_ties_and_rules_decide(world: World, unique: str) -> None:
    ch = f"prio-{unique}"
    sku = await world.sku(f"PRI-{unique}-1")
    a = await world.location(f"PA-{unique}", ch)
    b = await world.location(f"PB-{unique}", ch)  # same place as A
    await world.stock(a, sku, 5)
    await world.stock(b, sku, 5)
    await world.order.SetRoutingRules(
        svc.SetRoutingRulesRequest(
            request_id=f"r-{unique}", rules=pb.RoutingRules(channel_id=ch, location_priority=[b, a])
        ),
        timeout=10,
    )
    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
    )
    assert [f.location_id for f in got.order.fulfilments] == [b]
    level = await world.inventory.GetStockLevel(
        inv.GetStockLevelRequest(location_id=b, sku_code=sku), timeout=10
    )
    assert level.stock_level.reserved == 1


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("price_overflow", "lines[0].unit_price"),
        ("total_overflow", "lines"),
        ("long_channel_order_id", "channel_order_id"),
        ("long_member_id", "member_id"),
        ("malformed_stock_channel", "stock_channel"),
        ("discount_in_other_currency", "lines[0].discount.currency_code"),
        ("latitude_out_of_range", "delivery_address.latitude"),
        ("latitude_nan", "delivery_address.latitude"),
        ("longitude_out_of_range", "delivery_address.longitude"),
    ],
)
async def test_bad_values_are_invalid_argument_not_internal(
    world: World, unique: str, case: str, field: str
) -> None:
    """Values that used to reach PostgreSQL or inventory and come back as INTERNAL (or park
    the order as unfillable): refused at capture, naming the field, nothing written."""
    ch = f"val-{unique}"
    sku = await world.sku(f"VAL-{unique}-1")
    wh = await world.location(f"VW-{unique}", ch)
    await world.stock(wh, sku, 5)
    fields: dict[str, object] = {
        "channel_id": ch,
        "lines": [line(sku, 1)],
        "delivery_address": address(),
    }
    if case == "price_overflow":
        fields["lines"] = [line(sku, 3, 2**62)]
    elif case == "total_overflow":
        fields["lines"] = [line(sku, 1, 2**62), line(sku, 1, 2**62)]
    elif case == "long_channel_order_id":
        fields["channel_order_id"] = "T" * 5000
    elif case == "long_member_id":
        fields["member_id"] = "M" * 5000
    elif case == "malformed_stock_channel":
        fields["stock_channel"] = "no spaces please"
    elif case == "discount_in_other_currency":
        fields["lines"] = [
            svc.CaptureLine(
                sku_code=sku,
                quantity=1,
                unit_price=Money(currency_code="CNY", amount_minor=1000),
                discount=Money(currency_code="USD", amount_minor=100),
            )
        ]
    elif case == "latitude_out_of_range":
        fields["delivery_address"] = address(at=(123.0, 121.0))
    elif case == "latitude_nan":
        fields["delivery_address"] = address(at=(math.nan, 121.0))
    elif case == "longitude_out_of_range":
        fields["delivery_address"] = address(at=(31.0, 999.0))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await world.capture(f"c-{unique}", **fields)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad.value.details()
    assert field in [f for f, _ in field_violations(bad.value)]
    assert await world.levels(wh, sku) == (5, 0)
    listed = await world.order.ListOrders(svc.ListOrdersRequest(channel_id=ch), timeout=10)
    assert list(listed.orders) == []


async def test_other_long_strings_are_invalid_argument(world: World, unique: str) -> None:
    ch = f"long-{unique}"
    sku = await world.sku(f"LNG-{unique}-1")
    wh = await world.location(f"LW-{unique}", ch)
    await world.stock(wh, sku, 5)
    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
    )
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    calls: list[tuple[str, Awaitable[Any]]] = [
        (
            "reason",
            world.order.CancelOrder(
                svc.CancelOrderRequest(
                    request_id=f"x-{unique}", order_id=got.order.order_id, reason="r" * 5000
                ),
                timeout=10,
            ),
        ),
        (
            "assignee",
            world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="a" * 5000),
        ),
        (
            "rules.channel_id",
            world.order.SetRoutingRules(
                svc.SetRoutingRulesRequest(
                    request_id=f"r-{unique}", rules=pb.RoutingRules(channel_id="c" * 5000)
                ),
                timeout=10,
            ),
        ),
        (
            "rules.location_priority[0]",
            world.order.SetRoutingRules(
                svc.SetRoutingRulesRequest(
                    request_id=f"r2-{unique}",
                    rules=pb.RoutingRules(channel_id=ch, location_priority=["L" * 5000]),
                ),
                timeout=10,
            ),
        ),
    ]
    for field, call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await call
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad.value.details()
        assert field in [f for f, _ in field_violations(bad.value)]
    assert (await world.get(got.order.order_id)).order.status == pb.ORDER_STATUS_ALLOCATED


async def test_an_order_with_more_skus_than_one_inventory_query_takes(
    world: World, unique: str
) -> None:
    """Inventory answers nearest-stock for at most 50 SKUs at a time; an order may have 100
    lines. Routing asks in chunks, with the customer's position and around a pickup store."""
    ch = f"many-{unique}"
    skus = [await world.sku(f"MNY{i}-{unique}-1") for i in range(55)]
    wh = await world.location(f"MW-{unique}", ch, at=(31.3, 121.5))
    store = await world.location(f"MS-{unique}", ch)
    for sku in skus:
        await world.stock(wh, sku, 2)

    shipped = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        lines=[line(sku, 1) for sku in skus],
        delivery_address=address(),
    )
    assert shipped.order.status == pb.ORDER_STATUS_ALLOCATED
    assert [f.location_id for f in shipped.order.fulfilments] == [wh]
    assert len(shipped.order.fulfilments[0].line_ids) == 55
    (chosen,) = [c for c in shipped.routing.candidates if c.chosen]
    assert chosen.distance_meters > 0  # found by the (chunked) nearest-stock search

    picked = await world.capture(
        f"p-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_PICKUP,
        pickup_store_id=store,
        lines=[line(sku, 1) for sku in skus],
    )
    assert picked.order.status == pb.ORDER_STATUS_ALLOCATED
    (fo,) = (await world.get(picked.order.order_id)).fulfilment_orders
    assert fo.location_id == wh and fo.transfer_id
    for sku in (skus[0], skus[-1]):
        assert await world.levels(wh, sku) == (2, 2)


async def test_a_re_sent_capture_that_is_now_paid_pays_the_order(world: World, unique: str) -> None:
    """Marketplaces send an order when it is placed and again once it is paid: the second
    one pays the order (once), so it is allocated instead of expiring unpaid."""
    ch = f"resend-{unique}"
    sku = await world.sku(f"RSD-{unique}-1")
    wh = await world.location(f"RS-{unique}", ch)
    await world.stock(wh, sku, 4)
    fields: dict[str, object] = {
        "channel_id": ch,
        "channel_kind": pb.CHANNEL_KIND_MARKETPLACE,
        "channel_order_id": f"TM-{unique}",
        "lines": [line(sku, 2)],
        "delivery_address": address(),
    }
    first = await world.capture(
        f"c1-{unique}", payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT, **fields
    )
    assert first.order.status == pb.ORDER_STATUS_RESERVED
    order_id = first.order.order_id

    again = await world.capture(
        f"c2-{unique}", payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT, **fields
    )
    assert (again.order.order_id, again.order.status) == (order_id, pb.ORDER_STATUS_RESERVED)

    paid = await world.capture(f"c3-{unique}", payment_state=pb.PAYMENT_STATE_PAID_ONLINE, **fields)
    assert paid.order.order_id == order_id
    assert paid.order.payment_state == pb.PAYMENT_STATE_PAID_ONLINE
    assert paid.order.status == pb.ORDER_STATUS_ALLOCATED
    twice = await world.capture(
        f"c4-{unique}", payment_state=pb.PAYMENT_STATE_PAID_ONLINE, **fields
    )
    assert twice.order.status == pb.ORDER_STATUS_ALLOCATED
    assert await world.levels(wh, sku) == (4, 2)
    await world.topic.wait_for(order_id, "OrderAllocatedEvent")
    assert world.topic.names(order_id).count("OrderPaidEvent") == 1
    history = [h.to_status for h in (await world.get(order_id)).history]
    assert history.count(pb.ORDER_STATUS_PAID) == 1

    # An order that expired unpaid cannot be paid by a late re-send: the channel learns it.
    await world.order.SetRoutingRules(
        svc.SetRoutingRulesRequest(
            request_id=f"rules-{unique}",
            rules=pb.RoutingRules(channel_id=ch, payment_timeout_seconds=1),
        ),
        timeout=10,
    )
    late_fields = {**fields, "channel_order_id": f"TM2-{unique}"}
    late = await world.capture(
        f"l1-{unique}", payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT, **late_fields
    )

    async def expired() -> None:
        assert (await world.get(late.order.order_id)).order.status == pb.ORDER_STATUS_CANCELLED

    await eventually(expired, timeout=20)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.capture(
            f"l2-{unique}", payment_state=pb.PAYMENT_STATE_PAID_ONLINE, **late_fields
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await world.levels(wh, sku) == (4, 2)


async def test_list_orders_by_creation_time(world: World, unique: str) -> None:
    ch = f"time-{unique}"
    sku = await world.sku(f"TIM-{unique}-1")
    wh = await world.location(f"TW-{unique}", ch)
    await world.stock(wh, sku, 5)
    made = []
    for i in range(3):
        got = await world.capture(
            f"c{i}-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
        )
        made.append(got.order)
    times = [o.create_time.ToDatetime(tzinfo=UTC) for o in made]
    assert times == sorted(times)

    async def listed(**window: datetime) -> list[str]:
        request = svc.ListOrdersRequest(channel_id=ch)
        for name, at in window.items():
            getattr(request, name).FromDatetime(at)
        return [o.order_id for o in (await world.order.ListOrders(request, timeout=10)).orders]

    ids = [o.order_id for o in made]
    assert await listed() == ids[::-1]
    # From is inclusive, to is exclusive.
    assert await listed(create_time_from=times[1]) == [ids[2], ids[1]]
    assert await listed(create_time_to=times[1]) == [ids[0]]
    assert await listed(create_time_from=times[0], create_time_to=times[2]) == [ids[1], ids[0]]
    assert await listed(create_time_from=times[2] + timedelta(seconds=1)) == []

    bad = svc.ListOrdersRequest(channel_id=ch)
    bad.create_time_from.seconds = 10**12  # beyond year 9999
    with pytest.raises(grpc.aio.AioRpcError) as out_of_range:
        await world.order.ListOrders(bad, timeout=10)
    assert out_of_range.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(out_of_range.value)] == ["create_time_from"]
