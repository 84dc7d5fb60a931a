"""Each of the six fulfilment modes end to end against the real inventory service (endless
aisle with each of its handovers): at every step the stock at each location (on hand,
reserved, in transit), the fulfilment order (location, address, items, route hint,
courier/rider/guide) and the events published so far, in order."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from omni.inventory.v1 import inventory_pb2 as res
from omni.order.v1 import order_pb2 as pb

from tests.e2e.order.conftest import HZ, World, address, line

PAID_AND_ALLOCATED = [
    "OrderCreatedEvent",
    "OrderReservedEvent",
    "OrderPaidEvent",
    "OrderAllocatedEvent",
]
NEAR = (31.25, 121.49)  # about 2.5 km from the customer in Shanghai


def check_fulfilment(
    fo: pb.FulfilmentOrder,
    *,
    location: str,
    handover: pb.HandoverKind.ValueType,
    status: pb.FulfilmentStatus.ValueType,
    items: list[tuple[str, str, int]],
    hint: str,
    address_city: str | None = None,
    assignee: str = "",
    handover_store: str = "",
    via_transfer: bool = False,
) -> None:
    assert fo.location_id == location
    assert fo.handover == handover
    assert fo.status == status
    assert [(i.line_id, i.sku_code, i.quantity) for i in fo.items] == items
    assert hint in fo.route_hint, fo.route_hint
    if address_city is None:
        assert not fo.HasField("address")
    else:
        assert fo.address.city == address_city and fo.address.street == "1 Road"
    assert fo.assignee == assignee
    assert fo.handover_store_id == handover_store
    assert bool(fo.transfer_id) == via_transfer


async def only_fulfilment(world: World, order_id: str) -> pb.FulfilmentOrder:
    (fo,) = (await world.get(order_id)).fulfilment_orders
    return fo


async def test_express_delivery_ships_from_the_nearest_location_and_completes(
    world: World, unique: str
) -> None:
    ch = f"web-{unique}"
    sku = await world.sku(f"TEE-{unique}-M")
    near = await world.location(
        f"SH-{unique}", ch, at=NEAR, location_type=res.LOCATION_TYPE_ECOMMERCE_WAREHOUSE
    )
    far = await world.location(f"HZ-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(near, sku, 5)
    await world.stock(far, sku, 5)

    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 2, 5000, 1000)], delivery_address=address()
    )
    order = got.order
    order_id = order.order_id
    assert order.status == pb.ORDER_STATUS_ALLOCATED
    assert order.total.amount_minor == 9000
    assert [f.location_id for f in order.fulfilments] == [near]
    chosen = {c.location_id: c for c in got.routing.candidates}
    assert chosen[near].chosen and not chosen[far].chosen
    assert "ranked below" in chosen[far].reason
    assert await world.levels(near, sku) == (5, 2)
    assert await world.levels(far, sku) == (5, 0)
    fo = await only_fulfilment(world, order_id)
    check_fulfilment(
        fo,
        location=near,
        handover=pb.HANDOVER_KIND_COURIER,
        status=pb.FULFILMENT_STATUS_PENDING,
        items=[("L1", sku, 2)],
        hint="same city to Shanghai",
        address_city="Shanghai",
    )
    assert fo.distance_meters == chosen[near].distance_meters > 0
    await world.topic.wait_names(order_id, PAID_AND_ALLOCATED)
    allocated = world.topic.last(order_id, "OrderAllocatedEvent")
    assert [f.location_id for f in allocated.fulfilment_orders] == [near]

    shipped = await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="SF123")
    assert shipped.fulfilment_order.status == pb.FULFILMENT_STATUS_SHIPPED
    assert shipped.fulfilment_order.assignee == "SF123"
    assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_SHIPPED
    assert await world.levels(near, sku) == (3, 0)
    assert await world.levels(far, sku) == (5, 0)
    await world.topic.wait_names(order_id, [*PAID_AND_ALLOCATED, "FulfilmentShippedEvent"])

    done = await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    assert done.fulfilment_order.status == pb.FULFILMENT_STATUS_DELIVERED
    assert await world.levels(near, sku) == (3, 0)
    await world.topic.wait_names(
        order_id,
        [
            *PAID_AND_ALLOCATED,
            "FulfilmentShippedEvent",
            "FulfilmentDeliveredEvent",
            "OrderCompletedEvent",
        ],
    )
    completed = world.topic.last(order_id, "OrderCompletedEvent")
    assert completed.order.fulfilments[0].location_id == near
    assert completed.order.delivery_address.city == "Shanghai"
    assert completed.order.lines[0].line_total.amount_minor == 9000
    assert completed.order.lines[0].category_code == "TOPS"


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
    order_id = got.order.order_id
    assert got.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(store, sku) == (2, 0)
    assert await world.levels(other, sku) == (9, 0)
    reasons = {c.location_id: c.reason for c in got.routing.candidates}
    assert "selling store" in reasons[other]
    check_fulfilment(
        await only_fulfilment(world, order_id),
        location=store,
        handover=pb.HANDOVER_KIND_AT_COUNTER,
        status=pb.FULFILMENT_STATUS_DELIVERED,
        items=[("L1", sku, 1)],
        hint=f"hand over at {store}",
        handover_store=store,
    )
    await world.topic.wait_names(
        order_id, [*PAID_AND_ALLOCATED, "FulfilmentDeliveredEvent", "OrderCompletedEvent"]
    )
    done = world.topic.last(order_id, "OrderCompletedEvent")
    assert done.order.selling_store_id == store
    assert done.order.selling_guide_staff_id == "G-7"
    assert done.order.channel_kind == pb.CHANNEL_KIND_STORE
    assert done.order.payment_state == pb.PAYMENT_STATE_PAID_AT_POS


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
    order_id = got.order.order_id
    assert got.order.status == pb.ORDER_STATUS_ALLOCATED
    reasons = {c.location_id: c.reason for c in got.routing.candidates}
    assert [f.location_id for f in got.order.fulfilments] == [open_store]
    assert "closed now" in reasons[closed]
    assert "same-city" in reasons[other_city]
    assert await world.levels(open_store, sku) == (4, 1)
    assert await world.levels(closed, sku) == (4, 0)
    fo = await only_fulfilment(world, order_id)
    check_fulfilment(
        fo,
        location=open_store,
        handover=pb.HANDOVER_KIND_SAME_CITY_RIDER,
        status=pb.FULFILMENT_STATUS_PENDING,
        items=[("L1", sku, 1)],
        hint="same city to Shanghai",
        address_city="Shanghai",
    )
    await world.topic.wait_names(order_id, PAID_AND_ALLOCATED)

    shipped = await world.step(
        "ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="rider-9"
    )
    assert shipped.fulfilment_order.assignee == "rider-9"
    assert await world.levels(open_store, sku) == (3, 0)
    await world.topic.wait_names(order_id, [*PAID_AND_ALLOCATED, "FulfilmentShippedEvent"])
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert await world.levels(open_store, sku) == (3, 0)
    await world.topic.wait_names(
        order_id,
        [
            *PAID_AND_ALLOCATED,
            "FulfilmentShippedEvent",
            "FulfilmentDeliveredEvent",
            "OrderCompletedEvent",
        ],
    )


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
    order_id = got.order.order_id
    assert [f.location_id for f in got.order.fulfilments] == [store]
    assert await world.levels(store, sku) == (2, 2)
    assert await world.levels(wh, sku) == (50, 0)
    fo = await only_fulfilment(world, order_id)
    check_fulfilment(
        fo,
        location=store,
        handover=pb.HANDOVER_KIND_STORE_PICKUP,
        status=pb.FULFILMENT_STATUS_PENDING,
        items=[("L1", sku, 2)],
        hint=f"hand over at {store}",
        handover_store=store,
    )
    await world.topic.wait_names(order_id, PAID_AND_ALLOCATED)

    ready = await world.step("MarkReadyForPickup", fo.fulfilment_id, f"r-{unique}")
    assert ready.fulfilment_order.status == pb.FULFILMENT_STATUS_READY_FOR_PICKUP
    assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_ALLOCATED
    assert await world.levels(store, sku) == (2, 2)  # still held on the shelf
    await world.topic.wait_names(order_id, [*PAID_AND_ALLOCATED, "FulfilmentReadyForPickupEvent"])

    done = await world.step("ConfirmDelivery", fo.fulfilment_id, f"p-{unique}")
    assert done.fulfilment_order.status == pb.FULFILMENT_STATUS_PICKED_UP
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(store, sku) == (0, 0)
    assert await world.levels(wh, sku) == (50, 0)
    await world.topic.wait_names(
        order_id,
        [
            *PAID_AND_ALLOCATED,
            "FulfilmentReadyForPickupEvent",
            "FulfilmentDeliveredEvent",
            "OrderCompletedEvent",
        ],
    )
    assert world.topic.last(order_id, "OrderCompletedEvent").order.pickup_store_id == store


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
    order_id = got.order.order_id
    assert await world.levels(store, sku) == (1, 1)
    fo = await only_fulfilment(world, order_id)
    check_fulfilment(
        fo,
        location=store,
        handover=pb.HANDOVER_KIND_GUIDE,
        status=pb.FULFILMENT_STATUS_PENDING,
        items=[("L1", sku, 1)],
        hint=f"hand over at {store}",
        address_city="Shanghai",
        assignee="G-42",  # the guide who sold it brings it
        handover_store=store,
    )
    await world.topic.wait_names(order_id, PAID_AND_ALLOCATED)

    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}")
    assert await world.levels(store, sku) == (0, 0)
    await world.topic.wait_names(order_id, [*PAID_AND_ALLOCATED, "FulfilmentShippedEvent"])
    shipped = world.topic.last(order_id, "FulfilmentShippedEvent")
    assert shipped.fulfilment_order.assignee == "G-42"
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    await world.topic.wait_names(
        order_id,
        [
            *PAID_AND_ALLOCATED,
            "FulfilmentShippedEvent",
            "FulfilmentDeliveredEvent",
            "OrderCompletedEvent",
        ],
    )
    completed = world.topic.last(order_id, "OrderCompletedEvent")
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
    order_id = got.order.order_id
    assert [f.location_id for f in got.order.fulfilments] == [wh]
    assert await world.levels(wh, sku) == (3, 1)
    fo = await only_fulfilment(world, order_id)
    check_fulfilment(
        fo,
        location=wh,
        handover=pb.HANDOVER_KIND_COURIER,
        status=pb.FULFILMENT_STATUS_PENDING,
        items=[("L1", sku, 1)],
        hint="intercity to Shanghai",
        address_city="Shanghai",
    )
    assert fo.distance_meters > 100_000  # Hangzhou to Shanghai
    await world.topic.wait_names(order_id, PAID_AND_ALLOCATED)

    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}", assignee="SF9")
    assert await world.levels(wh, sku) == (2, 0)
    await world.topic.wait_names(order_id, [*PAID_AND_ALLOCATED, "FulfilmentShippedEvent"])
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert await world.levels(wh, sku) == (2, 0)
    await world.topic.wait_names(
        order_id,
        [
            *PAID_AND_ALLOCATED,
            "FulfilmentShippedEvent",
            "FulfilmentDeliveredEvent",
            "OrderCompletedEvent",
        ],
    )
    completed = world.topic.last(order_id, "OrderCompletedEvent")
    assert completed.order.fulfilment_mode == pb.FULFILMENT_MODE_ENDLESS_AISLE
    assert completed.order.endless_aisle_handover == pb.ENDLESS_AISLE_HANDOVER_DELIVERY
    assert completed.order.selling_store_id == store


async def test_endless_aisle_brought_by_the_guide(world: World, unique: str) -> None:
    """Sold at the kiosk of a store that lacks the item; the goods are transferred to that
    store and the selling guide brings them to the customer."""
    ch = f"eag-{unique}"
    sku = await world.sku(f"BOOT-{unique}-40")
    store = await world.location(f"EG-{unique}", ch)  # sells, has nothing
    source = await world.location(f"EGS-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(source, sku, 2)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_STORE,
        fulfilment_mode=pb.FULFILMENT_MODE_ENDLESS_AISLE,
        endless_aisle_handover=pb.ENDLESS_AISLE_HANDOVER_GUIDE,
        selling_store_id=store,
        selling_guide_staff_id="G-5",
        payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
        lines=[line(sku, 1)],
        delivery_address=address(),
    )
    order_id = got.order.order_id
    assert got.order.status == pb.ORDER_STATUS_ALLOCATED
    (winner,) = [c for c in got.routing.candidates if c.chosen]
    assert winner.location_id == source and winner.via_transfer
    assert await world.levels(source, sku) == (2, 1)
    assert await world.levels(store, sku) == (0, 0)
    fo = await only_fulfilment(world, order_id)
    check_fulfilment(
        fo,
        location=source,
        handover=pb.HANDOVER_KIND_GUIDE,
        status=pb.FULFILMENT_STATUS_PENDING,
        items=[("L1", sku, 1)],
        hint=f"transfer to {store}",
        address_city="Shanghai",
        assignee="G-5",
        handover_store=store,
        via_transfer=True,
    )
    await world.topic.wait_names(order_id, PAID_AND_ALLOCATED)

    # The transfer leaves the source: the hold there ends, the unit is in transit.
    moving = await world.step("ShipFulfilment", fo.fulfilment_id, f"t-{unique}")
    assert moving.fulfilment_order.status == pb.FULFILMENT_STATUS_TRANSFER_IN_TRANSIT
    assert await world.levels(source, sku) == (1, 0)
    assert (await world.level(store, sku)).in_transit == 1
    assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_ALLOCATED

    # It arrives at the selling store and is held there for the guide.
    arrived = await world.step("MarkReadyForPickup", fo.fulfilment_id, f"r-{unique}")
    assert arrived.fulfilment_order.status == pb.FULFILMENT_STATUS_READY_FOR_PICKUP
    store_level = await world.level(store, sku)
    assert (store_level.on_hand, store_level.reserved, store_level.in_transit) == (1, 1, 0)
    await world.topic.wait_names(order_id, [*PAID_AND_ALLOCATED, "FulfilmentReadyForPickupEvent"])

    # The guide takes it to the customer.
    out = await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}")
    assert out.fulfilment_order.status == pb.FULFILMENT_STATUS_SHIPPED
    assert out.fulfilment_order.assignee == "G-5"
    assert await world.levels(store, sku) == (0, 0)
    assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_SHIPPED
    await world.topic.wait_names(
        order_id,
        [*PAID_AND_ALLOCATED, "FulfilmentReadyForPickupEvent", "FulfilmentShippedEvent"],
    )
    done = await world.step("ConfirmDelivery", fo.fulfilment_id, f"d-{unique}")
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(source, sku) == (1, 0)
    assert await world.levels(store, sku) == (0, 0)
    await world.topic.wait_names(
        order_id,
        [
            *PAID_AND_ALLOCATED,
            "FulfilmentReadyForPickupEvent",
            "FulfilmentShippedEvent",
            "FulfilmentDeliveredEvent",
            "OrderCompletedEvent",
        ],
    )
    completed = world.topic.last(order_id, "OrderCompletedEvent")
    assert completed.order.endless_aisle_handover == pb.ENDLESS_AISLE_HANDOVER_GUIDE
    assert completed.order.selling_guide_staff_id == "G-5"
    assert completed.order.fulfilments[0].location_id == source
