"""Inventory benchmark: hot-SKU reservations/s against a bare conditional UPDATE on the same
PostgreSQL with the same number of clients; ATP for a 20-SKU batch and nearest stock over
1,000 locations x 10,000 SKUs (OMNI_BENCH_INVENTORY_SKUS overrides the SKU count).

The big data set is loaded with INSERT … SELECT generate_series straight into stock_levels:
it is read-only bench data without ledger rows (the ledger invariant is the tests' job)."""

from __future__ import annotations

import asyncio
import os
import random
import time

import asyncpg
import grpc
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from sqlalchemy.engine import URL

from libs.db import asyncpg_connect_kwargs
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess
from tests.bench.report import Report, latency_summary

SECTION = "inventory"
CLIENTS = 16
HOT_SECONDS = 10.0
LOCATIONS = 1_000
SKUS = int(os.environ.get("OMNI_BENCH_INVENTORY_SKUS", "10000"))
ATP_BATCH = 20
ATP_SAMPLES = 200
ATP_LOCATION_SAMPLES = 40
NEAREST_SAMPLES = 300
# Locations spread over ~280 x 240 km around Shanghai; a 20 km radius holds ~20 of them.
REGION = (30.0, 32.5, 120.0, 122.5)
NEAREST_RADIUS_M = 20_000.0


async def run(stack: TestStack, report: Report) -> None:
    settings = stack.settings("inventory")
    server = ServiceSubprocess("inventory", stack.env(), REPO / ".omni" / "bench-inventory.log")
    try:
        await server.wait_serving()
        conn = await asyncpg.connect(**asyncpg_connect_kwargs(settings.database_url()))
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = inv_grpc.InventoryServiceStub(channel)
                await hot_sku(stub, conn, settings.database_url(), report)
                await load_grid(conn, report)
                await atp(stub, report)
                await nearest(stub, report)
        finally:
            await conn.close()
    finally:
        server.terminate()
        server.wait()


async def hot_sku(
    stub: inv_grpc.InventoryServiceAsyncStub,
    conn: asyncpg.Connection,
    url: URL,
    report: Report,
) -> None:
    """CLIENTS callers reserving 1 unit of one SKU at one location as fast as they can."""
    # HOT-1 is the hot SKU; SPREAD-<n> give each client its own row, to tell the cost of
    # the RPC itself from the cost of queueing on one row.
    await conn.execute(
        "INSERT INTO tracked_skus (sku_code, style_code) "
        "SELECT 'HOT-1', 'HOT' UNION ALL "
        f"SELECT 'SPREAD-' || c, 'HOT' FROM generate_series(0, {CLIENTS - 1}) c "
        "ON CONFLICT DO NOTHING"
    )
    await stub.CreateLocation(
        inv.CreateLocationRequest(
            request_id="bench-hot-location",
            location=res.Location(
                location_id="HOT-WH",
                name="Hot warehouse",
                type=res.LOCATION_TYPE_ECOMMERCE_WAREHOUSE,
                province="Shanghai",
                city="Shanghai",
                latitude=31.2,
                longitude=121.5,
                time_zone="Asia/Shanghai",
                channels=["mall"],
            ),
        )
    )
    for sku in ["HOT-1", *(f"SPREAD-{c}" for c in range(CLIENTS))]:
        await stub.RecordMovement(
            inv.RecordMovementRequest(
                request_id=f"bench-stock-{sku}",
                location_id="HOT-WH",
                sku_code=sku,
                kind=res.MOVEMENT_KIND_RECEIPT,
                quantity=100_000_000,
            )
        )

    async def reserver(
        client: int, stop_at: float, latencies: list[float], sku: str = "HOT-1"
    ) -> int:
        done = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await stub.Reserve(
                inv.ReserveRequest(
                    request_id=f"{sku}-{client}-{done}",
                    order_id=f"{sku}-{client}-{done}",
                    channel="mall",
                    lines=[
                        res.ReservationLine(
                            line_id="1", sku_code=sku, location_id="HOT-WH", quantity=1
                        )
                    ],
                ),
                timeout=30,
            )
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    latencies: list[float] = []
    stop_at = time.perf_counter() + HOT_SECONDS
    started = time.perf_counter()
    counts = await asyncio.gather(*(reserver(c, stop_at, latencies) for c in range(CLIENTS)))
    reserve_rate = sum(counts) / (time.perf_counter() - started)

    spread_latencies: list[float] = []
    stop_at = time.perf_counter() + HOT_SECONDS
    started = time.perf_counter()
    spread = await asyncio.gather(
        *(reserver(c, stop_at, spread_latencies, f"SPREAD-{c}") for c in range(CLIENTS))
    )
    spread_rate = sum(spread) / (time.perf_counter() - started)

    # The floor: the same number of clients running only the conditional UPDATE, each in
    # its own autocommit transaction, on the same server.
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_hot_row (id int PRIMARY KEY, available bigint);"
        "INSERT INTO bench_hot_row VALUES (1, 100000000) ON CONFLICT (id) DO NOTHING"
    )
    kwargs = asyncpg_connect_kwargs(url)
    clients = [await asyncpg.connect(**kwargs) for _ in range(CLIENTS)]

    async def updater(client: asyncpg.Connection, stop_at: float) -> int:
        done = 0
        while time.perf_counter() < stop_at:
            await client.execute(
                "UPDATE bench_hot_row SET available = available - 1 WHERE id = 1 AND available >= 1"
            )
            done += 1
        return done

    try:
        stop_at = time.perf_counter() + HOT_SECONDS
        started = time.perf_counter()
        bare = await asyncio.gather(*(updater(c, stop_at) for c in clients))
        bare_rate = sum(bare) / (time.perf_counter() - started)
    finally:
        for client in clients:
            await client.close()
    reserved = await conn.fetchval(
        "SELECT reserved FROM stock_levels WHERE location_id = 'HOT-WH' AND sku_code = 'HOT-1'"
    )
    assert reserved == sum(counts), "every successful Reserve holds exactly one unit"
    report.add(
        SECTION,
        f"hot-SKU Reserve over gRPC, {CLIENTS} clients, {HOT_SECONDS:.0f} s",
        f"{reserve_rate:.0f} reservations/s ({latency_summary(latencies)})",
    )
    report.add(
        SECTION,
        f"Reserve over gRPC, {CLIENTS} clients, each its own SKU (no shared row)",
        f"{spread_rate:.0f} reservations/s ({latency_summary(spread_latencies)})",
    )
    report.add(
        SECTION,
        f"bare conditional UPDATE … WHERE available >= 1, {CLIENTS} clients, same PostgreSQL",
        f"{bare_rate:.0f} updates/s",
    )
    report.add(
        SECTION,
        "Reserve / bare UPDATE ratio",
        f"{reserve_rate / bare_rate:.2f} (whole RPC: validation, idempotency row, "
        "reservation rows, outbox event, commit)",
    )


async def load_grid(conn: asyncpg.Connection, report: Report) -> None:
    started = time.perf_counter()
    await conn.execute(
        "INSERT INTO tracked_skus (sku_code, style_code) "
        "SELECT 'G-' || lpad(s::text, 5, '0'), 'GS-' || (s / 10) "
        f"FROM generate_series(1, {SKUS}) s ON CONFLICT DO NOTHING"
    )
    lat0, lat1, lng0, lng1 = REGION
    await conn.execute(
        "SELECT setseed(0.42);"
        "INSERT INTO locations (location_id, name, type, province, city, latitude, longitude,"
        " time_zone, capabilities, channels, default_safety_stock) "
        "SELECT 'GL-' || lpad(l::text, 4, '0'), 'Grid ' || l,"
        " CASE WHEN l % 10 = 0 THEN 'regional_warehouse' ELSE 'store' END,"
        " 'Shanghai', 'Shanghai',"
        f" {lat0} + random() * {lat1 - lat0}, {lng0} + random() * {lng1 - lng0},"
        " 'Asia/Shanghai',"
        " CASE WHEN l % 3 = 0 THEN ARRAY['express_shipping', 'transfer']"
        "  ELSE ARRAY['express_shipping', 'pickup', 'same_city_delivery', 'transfer'] END,"
        " ARRAY['mall', 'pos'], 1 "
        f"FROM generate_series(1, {LOCATIONS}) l"
    )
    # Bench data only: skip the FK triggers (both sides were just inserted) and build the
    # by-SKU index once after the load instead of row by row, for load speed.
    await conn.execute("SET session_replication_role = replica")
    await conn.execute("DROP INDEX ix_stock_levels_sku_atp")
    await conn.execute(
        "INSERT INTO stock_levels (location_id, sku_code, on_hand, reserved, safety_stock) "
        "SELECT 'GL-' || lpad(l::text, 4, '0'), 'G-' || lpad(s::text, 5, '0'),"
        " (l * 7 + s * 13) % 20, (l + s) % 3, 1 "
        f"FROM generate_series(1, {LOCATIONS}) l, generate_series(1, {SKUS}) s"
    )
    await conn.execute("SET session_replication_role = DEFAULT")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute(
        "CREATE INDEX ix_stock_levels_sku_atp ON stock_levels (sku_code, location_id) "
        "INCLUDE (on_hand, reserved, safety_stock, in_transit)"
    )
    # As autovacuum would in steady state: statistics, and the visibility map that lets ATP
    # read the index alone.
    await conn.execute("VACUUM (ANALYZE) tracked_skus, locations, stock_levels")
    rows = await conn.fetchval("SELECT count(*) FROM stock_levels")
    report.add(
        SECTION,
        f"data set: {LOCATIONS} locations x {SKUS} SKUs",
        f"{rows} stock rows loaded in {time.perf_counter() - started:.0f} s (INSERT … SELECT)",
    )


async def atp(stub: inv_grpc.InventoryServiceAsyncStub, report: Report) -> None:
    rng = random.Random(7)

    def batch() -> list[str]:
        return [f"G-{s:05d}" for s in rng.sample(range(1, SKUS + 1), ATP_BATCH)]

    totals: list[float] = []
    for _ in range(ATP_SAMPLES):
        started = time.perf_counter()
        got = await stub.GetAvailability(
            inv.GetAvailabilityRequest(channel="mall", sku_codes=batch()), timeout=30
        )
        totals.append(time.perf_counter() - started)
        assert len(got.skus) == ATP_BATCH
    per_location: list[float] = []
    for _ in range(ATP_LOCATION_SAMPLES):
        started = time.perf_counter()
        got = await stub.GetAvailability(
            inv.GetAvailabilityRequest(channel="mall", sku_codes=batch(), include_locations=True),
            timeout=30,
        )
        per_location.append(time.perf_counter() - started)
        assert len(got.skus[0].locations) == LOCATIONS
    report.add(
        SECTION,
        f"GetAvailability, {ATP_BATCH} SKUs over {LOCATIONS} locations x {SKUS} SKUs, totals",
        latency_summary(totals),
    )
    report.add(
        SECTION,
        f"GetAvailability, {ATP_BATCH} SKUs, with all {ATP_BATCH * LOCATIONS} location levels",
        latency_summary(per_location),
    )


async def nearest(stub: inv_grpc.InventoryServiceAsyncStub, report: Report) -> None:
    rng = random.Random(11)
    lat0, lat1, lng0, lng1 = REGION
    latencies: list[float] = []
    found = 0
    for _ in range(NEAREST_SAMPLES):
        skus = [
            res.SkuQuantity(sku_code=f"G-{s:05d}", quantity=1)
            for s in rng.sample(range(1, SKUS + 1), 3)
        ]
        started = time.perf_counter()
        got = await stub.FindNearestStock(
            inv.FindNearestStockRequest(
                latitude=rng.uniform(lat0, lat1),
                longitude=rng.uniform(lng0, lng1),
                radius_meters=NEAREST_RADIUS_M,
                skus=skus,
                capability=res.CAPABILITY_PICKUP,
                open_now=True,
                channel="mall",
            ),
            timeout=30,
        )
        latencies.append(time.perf_counter() - started)
        found += len(got.locations)
    report.add(
        SECTION,
        f"FindNearestStock, 3 SKUs, {NEAREST_RADIUS_M / 1000:.0f} km, pickup, open now, "
        f"over {LOCATIONS} locations x {SKUS} SKUs",
        f"{latency_summary(latencies)}; {found / NEAREST_SAMPLES:.1f} locations per answer",
    )
