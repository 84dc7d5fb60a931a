"""Never oversell: 200 concurrent reservations for one SKU with 50 in stock, spread over two
inventory server processes on the same database; and routed ReserveBatch holds, some
selling at once, over three locations from both processes."""

from __future__ import annotations

import asyncio
import random
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


async def test_two_processes_batching_routed_holds_never_take_more_than_each_location_has(
    inventory, test_stack, unique, tmp_path: Path
):
    a = await inventory.track(f"HOTB-{unique}-A")
    b = await inventory.track(f"HOTB-{unique}-B")
    stock = {"N": 12, "S": 7, "W": 5}
    stores = {}
    for name, quantity in stock.items():
        stores[name] = (await inventory.location(f"HOTB-{unique}-{name}", safety=0)).location_id
        for sku in (a, b):
            await inventory.receive(stores[name], sku, quantity, f"{unique}-{name}-{sku}")
    rng = random.Random(unique)
    holds = []
    for n in range(160):
        ranked = rng.sample(list(stores.values()), k=rng.randint(1, 3))
        lines = [res.ReservationLine(line_id="1", sku_code=a, quantity=rng.randint(1, 2))]
        if rng.random() < 0.5:
            lines.append(res.ReservationLine(line_id="2", sku_code=b, quantity=1))
        holds.append(
            inv.HoldRequest(
                order_id=f"HOTB-{unique}-{n}",
                channel="mall",
                lines=lines,
                candidate_location_ids=ranked,
                confirm=n % 5 == 0,
            )
        )

    servers = [
        ServiceSubprocess("inventory", test_stack.env(), tmp_path / f"inventory-b{i}.log")
        for i in range(2)
    ]
    try:
        await asyncio.gather(*(server.wait_serving() for server in servers))
        channels = [grpc.aio.insecure_channel(server.address) for server in servers]
        stubs = [inv_grpc.InventoryServiceStub(channel) for channel in channels]

        async def call(i: int, chunk: list[inv.HoldRequest]) -> list[inv.HoldResult]:
            got = await stubs[i % 2].ReserveBatch(inv.ReserveBatchRequest(holds=chunk), timeout=60)
            return list(got.results)

        chunks = [holds[i : i + 8] for i in range(0, len(holds), 8)]
        answers = await asyncio.gather(*(call(i, c) for i, c in enumerate(chunks)))
        for channel in channels:
            await channel.close()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait()

    results = [r for chunk in answers for r in chunk]
    assert {r.code for r in results} <= {inv.HOLD_CODE_OK, inv.HOLD_CODE_FAILED_PRECONDITION}
    held = {r.order_id: r for r in results if r.code == inv.HOLD_CODE_OK}
    assert held and len(held) < len(holds)
    taken: dict[tuple[str, str], int] = {}
    sold: dict[tuple[str, str], int] = {}
    for hold in holds:
        result = held.get(hold.order_id)
        if result is None:
            continue
        places = {line.location_id for line in result.reservation.lines}
        assert len(places) == 1 and places <= set(hold.candidate_location_ids)
        assert len(result.reservation.lines) == len(hold.lines)  # whole
        for line in result.reservation.lines:
            key = (line.location_id, line.sku_code)
            target = sold if hold.confirm else taken
            target[key] = target.get(key, 0) + line.quantity
    for name, location_id in stores.items():
        for sku in (a, b):
            key = (location_id, sku)
            level = await inventory.level(location_id, sku)
            assert level.on_hand == stock[name] - sold.get(key, 0)
            assert level.reserved == taken.get(key, 0)
            assert level.on_hand - level.reserved >= 0  # never oversold
            await inventory.assert_ledger(location_id, sku, level.on_hand)
    assert await inventory.scalar(
        "SELECT count(*) FROM reservations WHERE order_id LIKE :o", o=f"HOTB-{unique}-%"
    ) == len(held)
