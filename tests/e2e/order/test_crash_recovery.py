"""SIGKILL the order service (a real OS process) while orders are between reserving and
allocating; after a restart every order is allocated or compensated, inventory's reserved
quantity is exactly what the orders hold, and each order then completes.

The kill window is made certain rather than hoped for: half the orders await payment, so
they stay reserved and unallocated until paid; the process is frozen (SIGSTOP) the moment
any order is seen mid-step (reserving, or paid and not yet allocated), the database state at
that instant is read once it is stable (nothing runs any more), checked to hold orders in
the window, and only then is the process killed."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import grpc
import sqlalchemy as sa
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.config import Settings
from libs.db import Database, drop_database
from libs.testing.services import ServiceSubprocess, eventually
from tests.e2e.order.conftest import ORDER_EXTRA, World, address, capture_request, line

ORDERS = 30
# Holding stock or about to: reserved and not (yet) allocated.
WINDOW = {"reserving", "reserved", "paid"}
MID_STEP = {"reserving", "paid"}
# What a driver leaves an order in when it has nothing more to do without a person.
AT_REST = {"allocated", "reserved", "unfillable", "cancelled"}


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

    async def statuses() -> dict[str, str]:
        async with db.engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT order_id, status FROM orders"))
            return {r[0]: r[1] for r in rows}

    try:
        await first.wait_serving()
        env["OMNI_ORDER_GRPC_PORT"] = str(first.port)
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
                            payment_state=pb.PAYMENT_STATE_PAID_ONLINE
                            if i % 2 == 0
                            else pb.PAYMENT_STATE_AWAITING_PAYMENT,
                        ),
                        timeout=60,
                    )
                )
                for i in range(ORDERS)
            ]

            async def mid_step_or_all_captured() -> None:
                # Some orders mid-step once a third got past routing (so the kill also meets
                # held and allocated ones), or, if the run is too quick for that, all of
                # them through routing: then the unpaid ones wait reserved, unallocated.
                now = await statuses()
                busy = set(now.values())
                routed = sum(1 for s in now.values() if s != "created")
                assert (busy & MID_STEP and routed >= ORDERS // 3) or (
                    len(now) == ORDERS and "created" not in busy
                ), now

            await eventually(mid_step_or_all_captured, timeout=60, interval=0.01)
            os.kill(first.process.pid, signal.SIGSTOP)

            async def stable() -> dict[str, str]:
                # Frozen, and nothing it sent is still running at PostgreSQL (a statement
                # sent just before the freeze commits on its own): then two reads agree
                # and no commit of it is still on its way.
                async with db.engine.connect() as conn:
                    running = await conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND state = 'active'"
                        )
                    )
                    assert running.scalar_one() == 0
                one = await statuses()
                assert one == await statuses()
                return one

            at_kill = await eventually(stable, timeout=20, interval=0.05)
            first.kill()
            first.wait()
            await asyncio.gather(*calls, return_exceptions=True)

        in_window = [o for o, s in at_kill.items() if s in WINDOW]
        assert in_window, f"no order between reserving and allocating at the kill: {at_kill}"
        assert "allocated" not in {at_kill[o] for o in in_window}

        second = ServiceSubprocess("order", env, log)
        try:
            await second.wait_serving()

            async def at_rest() -> dict[str, str]:
                now = await statuses()
                assert all(s in AT_REST for s in now.values()), Counter(now.values())
                return now

            resumed = await eventually(at_rest, timeout=60, interval=0.2)
            assert set(resumed) == set(at_kill)
            # Whatever the kill interrupted was finished or compensated, never left behind.
            for order_id in in_window:
                assert resumed[order_id] in AT_REST
            await _reserved_matches(world, db, [wh_a, wh_b], skus, {"reserved", "allocated"})

            # Every order then completes: the unpaid ones are paid, everything is delivered.
            async with grpc.aio.insecure_channel(second.address) as channel:
                stub = svc_grpc.OrderServiceStub(channel)
                for order_id, status in sorted(resumed.items()):
                    if status == "reserved":
                        paid = await stub.PayOrder(
                            svc.PayOrderRequest(
                                request_id=f"pay-{order_id}",
                                order_id=order_id,
                                payment_state=pb.PAYMENT_STATE_PAID_ONLINE,
                            ),
                            timeout=30,
                        )
                        assert paid.order.status == pb.ORDER_STATUS_ALLOCATED
                for order_id in sorted(resumed):
                    if resumed[order_id] not in {"reserved", "allocated"}:
                        continue
                    got = await stub.GetOrder(svc.GetOrderRequest(order_id=order_id), timeout=10)
                    for fo in got.fulfilment_orders:
                        await stub.ShipFulfilment(
                            svc.ShipFulfilmentRequest(
                                request_id=f"s-{fo.fulfilment_id}", fulfilment_id=fo.fulfilment_id
                            ),
                            timeout=30,
                        )
                        await stub.ConfirmDelivery(
                            svc.ConfirmDeliveryRequest(
                                request_id=f"d-{fo.fulfilment_id}", fulfilment_id=fo.fulfilment_id
                            ),
                            timeout=30,
                        )
        finally:
            second.terminate()
            second.wait()

        final = await statuses()
        assert set(final.values()) <= {"completed", "cancelled"}, Counter(final.values())
        assert "completed" in final.values()
        await _reserved_matches(world, db, [wh_a, wh_b], skus, set())
        async with db.engine.connect() as conn:
            sold = await conn.execute(
                sa.text(
                    "SELECT f.location_id, i->>'sku_code', sum((i->>'quantity')::int) "
                    "FROM fulfilments f JOIN orders o USING (order_id), "
                    "jsonb_array_elements(f.items) i "
                    "WHERE o.status = 'completed' GROUP BY 1, 2"
                )
            )
            units = {(r[0], r[1]): int(r[2]) for r in sold}
        for location in (wh_a, wh_b):
            for sku in skus:
                assert (await world.level(location, sku)).on_hand == 40 - units.get(
                    (location, sku), 0
                ), (location, sku)
    finally:
        first.kill()
        await db.dispose()
        await drop_database(settings.database_url())


async def _reserved_matches(
    world: World, db: Database, locations: list[str], skus: list[str], holding: set[str]
) -> None:
    """Inventory's reserved quantity per (location, SKU) is exactly what the orders in the
    ``holding`` statuses hold (one leg per location, not cancelled)."""
    async with db.engine.connect() as conn:
        held = await conn.execute(
            sa.text(
                "SELECT f.location_id, i->>'sku_code', sum((i->>'quantity')::int) "
                "FROM fulfilments f JOIN orders o USING (order_id), "
                "jsonb_array_elements(f.items) i "
                "WHERE o.status = ANY(:holding) AND f.status <> 'cancelled' GROUP BY 1, 2"
            ),
            {"holding": sorted(holding)},
        )
        expected = {(r[0], r[1]): int(r[2]) for r in held}
    for location in locations:
        for sku in skus:
            level = await world.level(location, sku)
            assert level.reserved == expected.get((location, sku), 0), (location, sku)
