"""Never oversell: 200 concurrent reservations for one SKU with 50 in stock, spread over two
inventory server processes on the same database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.testing.services import ServiceSubprocess

REQUESTS = 200
STOCK = 50


async def test_two_processes_never_reserve_more_than_is_there(
    inventory, test_stack, unique, tmp_path: Path
):
    sku = await inventory.track(f"HOT-{unique}")
    store = (await inventory.location(f"HOT-{unique}", safety=0)).location_id
    await inventory.receive(store, sku, STOCK, f"{unique}-stock")

    servers = [
        ServiceSubprocess("inventory", test_stack.env(), tmp_path / f"inventory-{i}.log")
        for i in range(2)
    ]
    try:
        await asyncio.gather(*(server.wait_serving() for server in servers))
        channels = [grpc.aio.insecure_channel(server.address) for server in servers]
        stubs = [inv_grpc.InventoryServiceStub(channel) for channel in channels]

        async def attempt(i: int) -> grpc.StatusCode:
            try:
                await stubs[i % 2].Reserve(
                    inv.ReserveRequest(
                        request_id=f"{unique}-{i}",
                        order_id=f"HOT-{unique}-{i}",
                        channel="mall",
                        lines=[
                            res.ReservationLine(
                                line_id="1", sku_code=sku, location_id=store, quantity=1
                            )
                        ],
                    ),
                    timeout=60,
                )
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(attempt(i) for i in range(REQUESTS)))
        for channel in channels:
            await channel.close()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait()

    assert codes.count(grpc.StatusCode.OK) == STOCK
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) == REQUESTS - STOCK
    level = await inventory.level(store, sku)
    assert (level.on_hand, level.reserved, level.available) == (STOCK, STOCK, 0)
    await inventory.assert_ledger(store, sku, STOCK)
    held = await inventory.scalar(
        "SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l "
        "JOIN reservations r ON r.order_id = l.order_id "
        "WHERE r.status = 'active' AND l.sku_code = :s",
        s=sku,
    )
    assert held == STOCK
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM stock_levels WHERE sku_code = :s "
            "AND (on_hand < 0 OR reserved < 0 OR reserved > on_hand)",
            s=sku,
        )
        == 0
    )
