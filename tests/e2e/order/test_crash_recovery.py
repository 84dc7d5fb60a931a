"""SIGKILL the order service (a real OS process) while orders are between capture, holding
and allocating; after a restart every order is allocated or compensated, and inventory's
reserved quantity is exactly what the allocated orders hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import sqlalchemy as sa
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.config import Settings
from libs.db import Database, drop_database
from libs.testing.services import ServiceSubprocess, eventually
from tests.e2e.order.conftest import ORDER_EXTRA, World, address, capture_request, line

ORDERS = 30
SETTLED = ("allocated", "unfillable", "cancelled")


async def test_kill_between_reserving_and_allocating_then_restart(
    world: World, test_stack, unique: str, tmp_path: Path
) -> None:
    ch = f"kill-{unique}"
    skus = [await world.sku(f"K{i}-{unique}-1") for i in range(2)]
    wh_a = await world.location(f"KA-{unique}", ch)
    wh_b = await world.location(f"KB-{unique}", ch, at=(31.3, 121.5))
    for sku in skus:
        await world.stock(wh_a, sku, 40)
        await world.stock(wh_b, sku, 40)

    # Its own database, so the in-process order service of the other tests cannot resume
    # these orders: only the restarted process can.
    env = {
        **test_stack.env(),
        **ORDER_EXTRA,
        "OMNI_DATABASE_PREFIX": f"omni_t{test_stack.run_id}k_",
        "OMNI_INVENTORY_ADDR": f"127.0.0.1:{world.inventory_port}",
        "OMNI_CATALOG_ADDR": f"127.0.0.1:{world.catalog_port}",
        "OMNI_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env("order", env)
    db = Database(settings.database_url(), pool_size=2, max_overflow=0)
    log = tmp_path / "order.log"
    first = ServiceSubprocess("order", env, log)
    try:
        await first.wait_serving()
        env["OMNI_ORDER_GRPC_PORT"] = str(first.port)

        async def statuses() -> dict[str, str]:
            async with db.engine.connect() as conn:
                rows = await conn.execute(sa.text("SELECT order_id, status FROM orders"))
                return {r[0]: r[1] for r in rows}

        async with grpc.aio.insecure_channel(first.address) as channel:
            stub: svc_grpc.OrderServiceAsyncStub = svc_grpc.OrderServiceStub(channel)
            calls = [
                asyncio.ensure_future(
                    stub.CaptureOrder(
                        capture_request(
                            f"k{i}-{unique}",
                            channel_id=ch,
                            lines=[line(skus[i % 2], 1), line(skus[(i + 1) % 2], 1)],
                            delivery_address=address(),
                        ),
                        timeout=60,
                    )
                )
                for i in range(ORDERS)
            ]

            async def some_allocated() -> None:
                assert "allocated" in (await statuses()).values()

            await eventually(some_allocated, timeout=60, interval=0.02)
            first.kill()
            first.wait()
            await asyncio.gather(*calls, return_exceptions=True)

        at_kill = await statuses()
        in_flight = [s for s in at_kill.values() if s not in SETTLED]
        assert in_flight, f"the kill came too late to test anything: {at_kill}"

        second = ServiceSubprocess("order", env, log)
        try:
            await second.wait_serving()

            async def settled() -> dict[str, str]:
                now = await statuses()
                assert all(s in SETTLED for s in now.values()), now
                return now

            final = await eventually(settled, timeout=60, interval=0.2)
        finally:
            second.terminate()
            second.wait()

        async with db.engine.connect() as conn:
            held = await conn.execute(
                sa.text(
                    "SELECT f.location_id, i->>'sku_code', sum((i->>'quantity')::int) "
                    "FROM fulfilments f JOIN orders o USING (order_id), "
                    "jsonb_array_elements(f.items) i "
                    "WHERE o.status = 'allocated' GROUP BY 1, 2"
                )
            )
            expected = {(r[0], r[1]): int(r[2]) for r in held}
        assert set(final) == set(at_kill)
        assert list(final.values()).count("allocated") >= 1
        for location in (wh_a, wh_b):
            for sku in skus:
                level = (
                    await world.inventory.GetStockLevel(
                        inv.GetStockLevelRequest(location_id=location, sku_code=sku), timeout=10
                    )
                ).stock_level
                assert level.reserved == expected.get((location, sku), 0), (location, sku)
                assert level.on_hand == 40
    finally:
        first.kill()
        await db.dispose()
        await drop_database(settings.database_url())
