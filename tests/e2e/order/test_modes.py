"""Each of the six fulfilment modes end to end against the real inventory service: stock,
fulfilment orders and events at each step."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from omni.inventory.v1 import inventory_pb2 as res
from omni.order.v1 import order_pb2 as pb

from tests.e2e.order.conftest import HZ, World, address, line


async def test_express_delivery_ships_from_the_nearest_location_and_completes(
    world: World, unique: str
) -> None:
    ch = f"web-{unique}"
    sku = await world.sku(f"TEE-{unique}-M")
    near = await world.location(
        f"SH-{unique}", ch, location_type=res.LOCATION_TYPE_ECOMMERCE_WAREHOUSE
    )
    far = await world.location(f"HZ-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(near, sku, 5)
    await world.stock(far, sku, 5)

    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 2, 5000, 1000)], delivery_address=address()
    )
    order = got.order
    assert order.status == pb.ORDER_STATUS_ALLOCATED
    assert order.total.amount_minor == 9000
    assert [f.location_id for f in order.fulfilments] == [near]
    assert await world.levels(near, sku) == (5, 2)
    assert await world.levels(far, sku) == (5, 0)
    chosen = {c.location_id: c for c in got.routing.candidates}
    assert chosen[near].chosen and not chosen[far].chosen
    assert "ranked below" in chosen[far].reason

    detail = await world.get(order.order_id)
    (fo,) = detail.fulfilment_orders
    assert fo.handover == pb.HANDOVER_KIND_COURIER
    assert fo.address.city == "Shanghai"
    assert fo.items[0].quantity == 2
    await world.topic.wait_for(order.order_id, "OrderAllocatedEvent")

    shipped = await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="SF123")
    assert shipped.fulfilment_order.status == pb.FULFILMENT_STATUS_SHIPPED
    assert await world.levels(near, sku) == (3, 0)
    done = await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    completed = await world.topic.wait_for(order.order_id, "OrderCompletedEvent")
    assert completed.order.fulfilments[0].location_id == near
    assert completed.order.delivery_address.city == "Shanghai"
    assert completed.order.lines[0].line_total.amount_minor == 9000
    assert completed.order.lines[0].category_code == "TOPS"
    assert world.topic.names(order.order_id)[:4] == [
        "OrderCreatedEvent",
        "OrderReservedEvent",
        "OrderPaidEvent",
        "OrderAllocatedEvent",
    ]


async def test_store_sale_is_carried_out_at_once(world: World, unique: str) -> None:
    ch = f"pos-{unique}"
    sku = await world.sku(f"CAP-{unique}-L")
    store = await world.location(f"ST-{unique}", ch)
    other = await world.location(f"ST2-{unique}", ch)
    await world.stock(store, sku, 3)
    await world.stock(other, sku, 9)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_STORE,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_SALE,
        selling_store_id=store,
        selling_guide_staff_id="G-7",
        payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
        lines=[line(sku, 1)],
    )
    assert got.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(store, sku) == (2, 0)
    assert await world.levels(other, sku) == (9, 0)
    reasons = {c.location_id: c.reason for c in got.routing.candidates}
    assert "selling store" in reasons[other]
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert fo.status == pb.FULFILMENT_STATUS_DELIVERED
    assert fo.handover == pb.HANDOVER_KIND_AT_COUNTER
    done = await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")
    assert done.order.selling_store_id == store
    assert done.order.selling_guide_staff_id == "G-7"
    assert done.order.channel_kind == pb.CHANNEL_KIND_STORE


async def test_same_city_delivery_uses_an_open_store_in_the_city(world: World, unique: str) -> None:
    ch = f"o2o-{unique}"
    sku = await world.sku(f"MUG-{unique}-W")

    # Open only one minute, two days from today (local time): never open now.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).isoweekday()
    day = (today + 1) % 7 + 1
    closed = await world.location(
        f"CL-{unique}",
        ch,
        at=(31.2310, 121.4740),
        opening_hours=[res.OpeningHours(day_of_week=day, open_minute=600, close_minute=601)],
    )
    open_store = await world.location(f"OP-{unique}", ch, at=(31.30, 121.50))
    other_city = await world.location(f"HZ-{unique}", ch, city="Hangzhou", at=HZ)
    for loc in (closed, open_store, other_city):
        await world.stock(loc, sku, 4)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_SAME_CITY_DELIVERY,
        lines=[line(sku, 1)],
        delivery_address=address(),
    )
    assert got.order.status == pb.ORDER_STATUS_ALLOCATED
    reasons = {c.location_id: c.reason for c in got.routing.candidates}
    assert [f.location_id for f in got.order.fulfilments] == [open_store]
    assert "closed now" in reasons[closed]
    assert "same-city" in reasons[other_city]
    assert await world.levels(open_store, sku) == (4, 1)
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert fo.handover == pb.HANDOVER_KIND_SAME_CITY_RIDER
    assert "same city" in fo.route_hint
    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="rider-9")
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert await world.levels(open_store, sku) == (3, 0)
    await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")


async def test_store_pickup_from_the_stores_own_shelf(world: World, unique: str) -> None:
    ch = f"mall-{unique}"
    sku = await world.sku(f"BAG-{unique}-B")
    store = await world.location(f"PK-{unique}", ch)
    wh = await world.location(f"WH-{unique}", ch, at=(31.0, 121.0))
    await world.stock(store, sku, 2)
    await world.stock(wh, sku, 50)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_PICKUP,
        pickup_store_id=store,
        lines=[line(sku, 2)],
    )
    assert [f.location_id for f in got.order.fulfilments] == [store]
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert not fo.transfer_id and fo.handover == pb.HANDOVER_KIND_STORE_PICKUP
    ready = await world.step("MarkReadyForPickup", fo.fulfilment_id, f"r-{unique}")
    assert ready.fulfilment_order.status == pb.FULFILMENT_STATUS_READY_FOR_PICKUP
    await world.topic.wait_for(got.order.order_id, "FulfilmentReadyForPickupEvent")
    assert await world.levels(store, sku) == (2, 2)
    done = await world.step("ConfirmDelivery", fo.fulfilment_id, f"p-{unique}")
    assert done.fulfilment_order.status == pb.FULFILMENT_STATUS_PICKED_UP
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(store, sku) == (0, 0)
    assert await world.levels(wh, sku) == (50, 0)
    completed = await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")
    assert completed.order.pickup_store_id == store


async def test_guide_delivery_from_the_guides_store(world: World, unique: str) -> None:
    ch = f"guide-{unique}"
    sku = await world.sku(f"SCF-{unique}-R")
    store = await world.location(f"GS-{unique}", ch)
    await world.stock(store, sku, 1)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_GUIDE_DELIVERY,
        selling_store_id=store,
        selling_guide_staff_id="G-42",
        referring_guide_code="GC-XYZ",
        lines=[line(sku, 1)],
        delivery_address=address(),
    )
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert fo.handover == pb.HANDOVER_KIND_GUIDE and fo.location_id == store
    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="G-42")
    await world.topic.wait_for(got.order.order_id, "FulfilmentShippedEvent")
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert await world.levels(store, sku) == (0, 0)
    completed = await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")
    assert completed.order.referring_guide_code == "GC-XYZ"
    assert completed.order.selling_guide_staff_id == "G-42"


async def test_endless_aisle_delivered_from_elsewhere(world: World, unique: str) -> None:
    ch = f"kiosk-{unique}"
    sku = await world.sku(f"JKT-{unique}-S")
    store = await world.location(f"EA-{unique}", ch)  # sells, has nothing
    wh = await world.location(f"EW-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(wh, sku, 3)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_STORE,
        fulfilment_mode=pb.FULFILMENT_MODE_ENDLESS_AISLE,
        endless_aisle_handover=pb.ENDLESS_AISLE_HANDOVER_DELIVERY,
        selling_store_id=store,
        selling_guide_staff_id="G-1",
        payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
        lines=[line(sku, 1)],
        delivery_address=address(),
    )
    assert [f.location_id for f in got.order.fulfilments] == [wh]
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert fo.handover == pb.HANDOVER_KIND_COURIER
    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}")
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert await world.levels(wh, sku) == (2, 0)
    completed = await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")
    assert completed.order.fulfilment_mode == pb.FULFILMENT_MODE_ENDLESS_AISLE
    assert completed.order.endless_aisle_handover == pb.ENDLESS_AISLE_HANDOVER_DELIVERY
    assert completed.order.selling_store_id == store
