"""Capture: duplicates by channel order id, bad input, and what is (not) reserved."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc

from libs.grpc_errors import field_violations
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
