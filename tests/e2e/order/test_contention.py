"""Many orders racing for little stock: holds refused after routing are compensated and the
orders re-routed or parked; nothing is oversold and inventory's reserved figure is exactly
what the allocated orders hold. Unpaid expiry and the unfillable deadline with two
background "replicas" working the same rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc

from libs.db import Database
from libs.pg import Pg
from libs.testing.services import eventually
from services.order.adapters.catalog_client import CatalogClient
from services.order.adapters.inventory_client import InventoryClient
from services.order.service_layer.context import OrderConfig, OrderContext
from services.order.service_layer.orders import recover_once
from tests.e2e.order.conftest import World, address, line


async def test_racing_orders_never_oversell(world: World, unique: str) -> None:
    ch = f"race-{unique}"
    sku = await world.sku(f"HOT-{unique}-1")
    near = await world.location(f"RN-{unique}", ch)
    far = await world.location(f"RF-{unique}", ch, at=(31.5, 121.9))
    await world.stock(near, sku, 3)
    await world.stock(far, sku, 2)

    results = await asyncio.gather(
        *(
            world.capture(
                f"r{i}-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
            )
            for i in range(8)
        )
    )
    ids = [r.order.order_id for r in results]

    async def settled() -> list[svc.GetOrderResponse]:
        # A hold refused after routing is released and the order routed again (or parked
        # and woken by the next stock change), so look at where the orders came to rest.
        details = [await world.get(order_id) for order_id in ids]
        statuses = [d.order.status for d in details]
        assert statuses.count(pb.ORDER_STATUS_ALLOCATED) == 5, statuses
        assert statuses.count(pb.ORDER_STATUS_UNFILLABLE) == 3, statuses
        return details

    details = await eventually(settled, timeout=30)
    held: dict[str, int] = {}
    for d in details:
        for f in d.order.fulfilments:
            held[f.location_id] = held.get(f.location_id, 0) + 1
    assert held == {near: 3, far: 2}
    assert await world.levels(near, sku) == (3, 3)
    assert await world.levels(far, sku) == (2, 2)


async def test_two_sweepers_expire_each_unpaid_order_once(
    world: World, test_stack, unique: str
) -> None:
    ch = f"sweep-{unique}"
    sku = await world.sku(f"SWP-{unique}-1")
    wh = await world.location(f"SW-{unique}", ch)
    await world.stock(wh, sku, 10)
    ids = []
    for i in range(4):
        got = await world.capture(
            f"u{i}-{unique}",
            channel_id=ch,
            payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
            lines=[line(sku, 2)],
            delivery_address=address(),
        )
        ids.append(got.order.order_id)
    # A waiting order too, its deadline due.
    short = await world.sku(f"SWP-{unique}-2")
    waiting = await world.capture(
        f"w-{unique}", channel_id=ch, lines=[line(short, 1)], delivery_address=address()
    )
    assert waiting.order.status == pb.ORDER_STATUS_UNFILLABLE
    assert await world.levels(wh, sku) == (10, 8)

    settings = test_stack.settings("order").with_overrides(
        peer_addresses={
            **test_stack.settings("order").peer_addresses,
            "inventory": f"127.0.0.1:{world.inventory_port}",
            "catalog": f"127.0.0.1:{world.catalog_port}",
        }
    )
    db = Database(settings.database_url(), pool_size=4, max_overflow=0)
    pg = Pg(settings.database_url(), producer="order", topic=settings.topic("order"))
    replicas = [
        OrderContext(
            pg,
            InventoryClient(settings),
            CatalogClient(settings),
            OrderConfig(lease_seconds=5),
        )
        for _ in range(2)
    ]
    try:
        # Both replicas run a round "two days later": every deadline has passed.
        later = datetime.now(UTC) + timedelta(days=2)
        await asyncio.gather(*(recover_once(ctx, later) for ctx in replicas))

        async def all_cancelled() -> None:
            for order_id in [*ids, waiting.order.order_id]:
                order = (await world.get(order_id)).order
                assert order.status == pb.ORDER_STATUS_CANCELLED, order_id

        await eventually(all_cancelled, timeout=20)
        assert await world.levels(wh, sku) == (10, 0)
        for order_id in ids:
            event = await world.topic.wait_for(order_id, "OrderCancelledEvent")
            assert event.reason == "unpaid_expired"
        async with db.engine.connect() as conn:
            cancelled = await conn.execute(
                sa.text(
                    "SELECT order_id, count(*) FROM order_history "
                    "WHERE to_status = 'cancelled' AND order_id = ANY(:ids) GROUP BY order_id"
                ),
                {"ids": [*ids, waiting.order.order_id]},
            )
            assert {r[0]: r[1] for r in cancelled} == {i: 1 for i in [*ids, waiting.order.order_id]}
        detail = await world.get(waiting.order.order_id)
        assert detail.order.cancel_reason == "unfillable_deadline"
    finally:
        for ctx in replicas:
            await ctx.close()
        await pg.close()
        await db.dispose()
    listed = await world.order.ListOrders(
        svc.ListOrdersRequest(channel_id=ch, status=pb.ORDER_STATUS_CANCELLED), timeout=10
    )
    assert len(listed.orders) == 5
