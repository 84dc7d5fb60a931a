"""Order benchmark: orders/s end to end (CaptureOrder of a paid express order: validate,
capture, route over inventory's nearest stock and ATP, hold at inventory, allocate) with
p50/p99, and, in the same run against the same order server, the rate of an empty gRPC call
(grpc.health.v1 Check) with the same number of clients — the ratio says what a captured
order costs compared with a call that does nothing.

Catalog, inventory and order run as their own OS processes; SKUs are created in catalog and
reach inventory through catalog's SkuCreatedEvent."""

from __future__ import annotations

import asyncio
import os
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.common.v1.money_pb2 import Money
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess, eventually
from tests.bench.report import Report, latency_summary

SECTION = "order"
CLIENTS = 8
ORDERS = int(os.environ.get("OMNI_BENCH_ORDER_ORDERS", "400"))
HEALTH_SECONDS = 5.0
LOCATIONS = 20
SKUS = 50
CHANNEL = "bench-web"


async def run(stack: TestStack, report: Report) -> None:
    env = {**stack.env(), "OMNI_LOG_LEVEL": "WARNING"}
    catalog = ServiceSubprocess("catalog", env, REPO / ".omni" / "bench-order-catalog.log")
    inventory = ServiceSubprocess("inventory", env, REPO / ".omni" / "bench-order-inventory.log")
    try:
        await catalog.wait_serving()
        await inventory.wait_serving()
        order_env = {
            **env,
            "OMNI_INVENTORY_ADDR": inventory.address,
            "OMNI_CATALOG_ADDR": catalog.address,
        }
        order = ServiceSubprocess("order", order_env, REPO / ".omni" / "bench-order.log")
        try:
            await order.wait_serving()
            async with (
                grpc.aio.insecure_channel(catalog.address) as cat_channel,
                grpc.aio.insecure_channel(inventory.address) as inv_channel,
                grpc.aio.insecure_channel(order.address) as order_channel,
            ):
                inv_stub: inv_grpc.InventoryServiceAsyncStub = inv_grpc.InventoryServiceStub(
                    inv_channel
                )
                order_stub: svc_grpc.OrderServiceAsyncStub = svc_grpc.OrderServiceStub(
                    order_channel
                )
                cat_stub: cat_grpc.CatalogServiceAsyncStub = cat_grpc.CatalogServiceStub(
                    cat_channel
                )
                skus = await setup(cat_stub, inv_stub)
                rate = await orders(order_stub, skus, report)
                await health(order_channel, report, rate)
        finally:
            order.terminate()
            order.wait()
    finally:
        inventory.terminate()
        inventory.wait()
        catalog.terminate()
        catalog.wait()


async def setup(
    catalog: cat_grpc.CatalogServiceAsyncStub, stub: inv_grpc.InventoryServiceAsyncStub
) -> list[str]:
    skus = [f"BENCH-{i:03d}-M" for i in range(SKUS)]
    for sku in skus:
        await catalog.CreateSku(
            cat.CreateSkuRequest(
                request_id=f"bench-{sku}", sku_code=sku, style_code=sku[:-2], name=sku
            ),
            timeout=30,
        )

    async def tracked() -> None:
        for sku in skus:
            await stub.GetTrackedSku(inv.GetTrackedSkuRequest(sku_code=sku), timeout=10)

    await eventually(tracked, timeout=120)
    for i in range(LOCATIONS):
        location_id = f"BENCH-LOC-{i:02d}"
        await stub.CreateLocation(
            inv.CreateLocationRequest(
                request_id=f"bench-{location_id}",
                location=res.Location(
                    location_id=location_id,
                    name=location_id,
                    type=res.LOCATION_TYPE_STORE,
                    province="Shanghai",
                    city="Shanghai",
                    latitude=31.0 + i * 0.02,
                    longitude=121.2 + i * 0.02,
                    time_zone="Asia/Shanghai",
                    capabilities=[res.CAPABILITY_EXPRESS_SHIPPING, res.CAPABILITY_TRANSFER],
                    channels=[CHANNEL],
                    default_safety_stock=0,
                ),
            ),
            timeout=30,
        )
        await stub.ImportStock(
            inv.ImportStockRequest(
                request_id=f"bench-stock-{location_id}",
                rows=inv.ImportStockRows(
                    rows=[
                        inv.ImportStockRow(
                            location_id=location_id,
                            sku_code=sku,
                            kind=res.MOVEMENT_KIND_RECEIPT,
                            quantity=10_000,
                            idempotency_key=f"bench-{location_id}-{sku}",
                        )
                        for sku in skus
                    ]
                ),
            ),
            timeout=60,
        )
    return skus


def _request(n: int, skus: list[str]) -> svc.CaptureOrderRequest:
    cny = Money(currency_code="CNY", amount_minor=9900)
    return svc.CaptureOrderRequest(
        request_id=f"bench-{n}",
        channel_id=CHANNEL,
        channel_kind=pb.CHANNEL_KIND_OWN_ONLINE,
        channel_order_id=f"bench-{n}",
        member_id=f"M-{n % 100}",
        fulfilment_mode=pb.FULFILMENT_MODE_EXPRESS_DELIVERY,
        payment_state=pb.PAYMENT_STATE_PAID_ONLINE,
        delivery_address=pb.Address(
            province="Shanghai", city="Shanghai", latitude=31.2, longitude=121.45
        ),
        lines=[
            svc.CaptureLine(sku_code=skus[(n * 7 + k) % len(skus)], quantity=1, unit_price=cny)
            for k in range(2)
        ],
    )


async def orders(stub: svc_grpc.OrderServiceAsyncStub, skus: list[str], report: Report) -> float:
    # Warm up connections and caches outside the measurement.
    for n in range(CLIENTS):
        await stub.CaptureOrder(_request(-1 - n, skus), timeout=30)
    latencies: list[float] = []
    counter = iter(range(ORDERS))
    allocated = 0

    async def client() -> None:
        nonlocal allocated
        for n in counter:
            start = time.perf_counter()
            got = await stub.CaptureOrder(_request(n, skus), timeout=60)
            latencies.append(time.perf_counter() - start)
            allocated += got.order.status == pb.ORDER_STATUS_ALLOCATED

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    rate = ORDERS / elapsed
    report.add(
        SECTION,
        f"orders/s end to end (capture → reserved → allocated; {ORDERS} two-line orders, "
        f"{CLIENTS} clients, {LOCATIONS} locations)",
        f"{rate:.1f}",
    )
    report.add(SECTION, "CaptureOrder latency", latency_summary(latencies))
    report.add(SECTION, "orders allocated", f"{allocated}/{ORDERS}")
    return rate


async def health(channel: grpc.aio.Channel, report: Report, orders_rate: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    count = 0
    deadline = time.perf_counter() + HEALTH_SECONDS

    async def client() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    rate = count / (time.perf_counter() - start)
    report.add(
        SECTION, f"empty gRPC calls/s (health Check, same server, {CLIENTS} clients)", f"{rate:.0f}"
    )
    report.add(SECTION, "ratio: empty calls per captured order", f"{rate / orders_rate:.1f}x")
