"""Inventory benchmark: hot-SKU reservations/s — through the batched engine in-process, over
gRPC with Reserve and with ReserveBatch — against a bare conditional UPDATE on the same
PostgreSQL with the same number of clients, with the CPU each hold costs (server and every
PostgreSQL process, from /proc); ATP for a 20-SKU batch and nearest stock over
1,000 locations x 10,000 SKUs (OMNI_BENCH_INVENTORY_SKUS overrides the SKU count;
OMNI_BENCH_INVENTORY_HOT_ONLY=1 stops after the hot-SKU figures).

The big data set is loaded with INSERT … SELECT generate_series straight into stock_levels:
it is read-only bench data without ledger rows (the ledger invariant is the tests' job)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.config import Settings
from libs.db import asyncpg_connect_kwargs
from libs.pg import Pg
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess
from services.inventory.domain.holds import Hold
from services.inventory.domain.reservations import ReservationLine
from services.inventory.service_layer.reservation_engine import ReservationEngine
from tests.bench.report import Report, latency_summary

SECTION = "inventory"
CLIENTS = 16
HOLDS_PER_CALL = 16
ROUNDS = 5
SLICE_SECONDS = 2.0
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
                await hot_sku(stub, conn, settings, server.process.pid, report)
                if os.environ.get("OMNI_BENCH_INVENTORY_HOT_ONLY"):
                    return
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
    settings: Settings,
    server_pid: int,
    report: Report,
) -> None:
    """CLIENTS callers holding 1 unit of one SKU at one location as fast as they can: through
    the engine in this process, over gRPC one Reserve at a time and HOLDS_PER_CALL holds per
    ReserveBatch, each client on its own SKU, and the bare conditional UPDATE. The variants
    take turns in ROUNDS short slices, so a change in the shared machine's load (or its
    disk's fsync time, which bounds the bare UPDATE) falls on all of them alike."""
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
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_hot_row (id int PRIMARY KEY, available bigint);"
        "INSERT INTO bench_hot_row VALUES (1, 100000000) ON CONFLICT (id) DO NOTHING"
    )
    cpu = CpuMeter(server_pid, await conn.fetchval("SELECT pg_backend_pid()"))
    pg = Pg(settings.database_url(), producer="inventory", topic=settings.topic("inventory"))
    await pg.start()
    engine = ReservationEngine(pg)
    kwargs = asyncpg_connect_kwargs(settings.database_url())
    bare_clients = [await asyncpg.connect(**kwargs) for _ in range(CLIENTS)]
    variants = [
        Variant("engine", engine_caller(engine)),
        Variant("Reserve", reserve_caller(stub, spread=False)),
        Variant("ReserveBatch", reserve_batch_caller(stub)),
        Variant("Reserve, own SKU", reserve_caller(stub, spread=True)),
        Variant("bare UPDATE", bare_updater(bare_clients)),
    ]
    try:
        for _ in range(ROUNDS):
            for variant in variants:
                await variant.run_slice(cpu)
    finally:
        for client in bare_clients:
            await client.close()
        await pg.close()
    engine_run, reserve_run, batch_run, spread_run, bare_run = variants

    reserved = await conn.fetchval(
        "SELECT reserved FROM stock_levels WHERE location_id = 'HOT-WH' AND sku_code = 'HOT-1'"
    )
    held = engine_run.count + reserve_run.count + batch_run.count
    assert reserved == held, "every hold that succeeded holds exactly one unit"
    events = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE key = 'HOT-1' "
        "AND event_type = 'omni.inventory.v1.StockChangedEvent'"
    )
    took = f"{ROUNDS} x {SLICE_SECONDS:.0f} s"
    report.add(
        SECTION,
        f"hot-SKU holds through the batched engine in-process, {CLIENTS} concurrent callers"
        f" ({took})",
        f"{engine_run.rate:.0f} holds/s ({latency_summary(engine_run.latencies)}); "
        f"{engine.holds_applied / engine.batches:.1f} holds per batch; {engine_run.cpu()}",
    )
    report.add(
        SECTION,
        f"hot-SKU Reserve over gRPC, {CLIENTS} clients ({took})",
        f"{reserve_run.rate:.0f} reservations/s ({latency_summary(reserve_run.latencies)}); "
        f"{reserve_run.cpu()}",
    )
    report.add(
        SECTION,
        f"hot-SKU ReserveBatch over gRPC, {CLIENTS} clients x {HOLDS_PER_CALL} holds per call"
        f" ({took})",
        f"{batch_run.rate:.0f} holds/s (per call: {latency_summary(batch_run.latencies)}); "
        f"{batch_run.cpu()}",
    )
    report.add(
        SECTION,
        f"Reserve over gRPC, {CLIENTS} clients, each its own SKU (no shared row)",
        f"{spread_run.rate:.0f} reservations/s ({latency_summary(spread_run.latencies)})",
    )
    report.add(
        SECTION,
        f"bare conditional UPDATE … WHERE available >= 1, {CLIENTS} clients, same PostgreSQL"
        f" ({took})",
        f"{bare_run.rate:.0f} updates/s ({bare_run.cpu('update')})",
    )
    report.add(
        SECTION,
        "ratio to the bare UPDATE (same run, same clients): engine / Reserve / ReserveBatch",
        f"{engine_run.rate / bare_run.rate:.2f} / {reserve_run.rate / bare_run.rate:.2f} / "
        f"{batch_run.rate / bare_run.rate:.2f} (each hold: reservation header and line, "
        "request record for Reserve, outbox; one StockChanged per batch)",
    )
    report.add(
        SECTION,
        "StockChangedEvents written for the hot SKU during the hold runs",
        f"{events} for {held} holds (one per level and batch, not one per hold)",
    )


# A client: runs until stop_at, appends each call's latency, returns the units it did.
Client = Callable[[int, float, list[float]], Coroutine[Any, Any, int]]


@dataclass
class Variant:
    name: str
    client: Client
    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    async def run_slice(self, meter: CpuMeter) -> None:
        before = meter.sample()
        started = time.perf_counter()
        stop_at = started + SLICE_SECONDS
        counts = await asyncio.gather(
            *(self.client(c, stop_at, self.latencies) for c in range(CLIENTS))
        )
        self.seconds += time.perf_counter() - started
        self.count += sum(counts)
        for i, used in enumerate(meter.used(before, meter.sample())):
            self.cpu_seconds[i] += used

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def cpu(self, unit: str = "hold") -> str:
        bench, server, postgres = (1000 * s / max(self.count, 1) for s in self.cpu_seconds)
        return (
            f"CPU-ms per {unit}: this process {bench:.3f}, inventory server {server:.3f}, "
            f"PostgreSQL {postgres:.3f}"
        )


def engine_caller(engine: ReservationEngine) -> Client:
    """The batched path itself: coroutines in this process handing holds to one engine (as
    the servicer does), on the service's database and outbox."""
    line = (ReservationLine("1", "HOT-1", "HOT-WH", 1),)
    numbers = itertools.count()

    async def caller(client: int, stop_at: float, latencies: list[float]) -> int:
        done = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            outcome = await engine.hold(Hold(f"ENG-{next(numbers)}", "mall", line))
            assert outcome.reservation is not None, outcome.error
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    return caller


def reserve_caller(stub: inv_grpc.InventoryServiceAsyncStub, *, spread: bool) -> Client:
    numbers = itertools.count()

    async def reserver(client: int, stop_at: float, latencies: list[float]) -> int:
        sku = f"SPREAD-{client}" if spread else "HOT-1"
        done = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            key = f"{sku}-{next(numbers)}"
            await stub.Reserve(
                inv.ReserveRequest(
                    request_id=key,
                    order_id=key,
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

    return reserver


def reserve_batch_caller(stub: inv_grpc.InventoryServiceAsyncStub) -> Client:
    numbers = itertools.count()

    async def batcher(client: int, stop_at: float, latencies: list[float]) -> int:
        done = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            got = await stub.ReserveBatch(
                inv.ReserveBatchRequest(
                    holds=[
                        inv.HoldRequest(
                            order_id=f"RB-{next(numbers)}",
                            channel="mall",
                            lines=[
                                res.ReservationLine(
                                    line_id="1", sku_code="HOT-1", location_id="HOT-WH", quantity=1
                                )
                            ],
                        )
                        for _ in range(HOLDS_PER_CALL)
                    ]
                ),
                timeout=30,
            )
            assert all(r.code == inv.HOLD_CODE_OK for r in got.results)
            latencies.append(time.perf_counter() - started)
            done += HOLDS_PER_CALL
        return done

    return batcher


def bare_updater(clients: list[asyncpg.Connection]) -> Client:
    """The floor: each client only runs the conditional UPDATE, in its own autocommit
    transaction, on the same server."""

    async def updater(client: int, stop_at: float, latencies: list[float]) -> int:
        done = 0
        while time.perf_counter() < stop_at:
            await clients[client].execute(
                "UPDATE bench_hot_row SET available = available - 1 WHERE id = 1 AND available >= 1"
            )
            done += 1
        return done

    return updater


Sample = tuple[float, float, dict[int, float]]


class CpuMeter:
    """CPU time of this process, the inventory server and every PostgreSQL process (the
    postmaster and its children: backends, WAL writer, checkpointer …), from /proc. Each
    PostgreSQL process counts from when it was first seen, so one that ends between two
    samples loses only its last moments, never turns the sum negative."""

    def __init__(self, server_pid: int, backend_pid: int) -> None:
        self.server_pid = server_pid
        self.postmaster_pid = _stat(backend_pid)[1]

    def sample(self) -> Sample:
        postgres: dict[int, float] = {}
        if self.postmaster_pid:  # an external server's processes are not ours to see
            for pid in _pids():
                cpu, parent = _stat(pid)
                if self.postmaster_pid in (pid, parent):
                    postgres[pid] = cpu
        return time.process_time(), _stat(self.server_pid)[0], postgres

    def used(self, before: Sample, after: Sample) -> tuple[float, float, float]:
        """CPU seconds of (this process, the server, PostgreSQL) between two samples."""
        postgres = sum(cpu - before[2].get(pid, 0.0) for pid, cpu in after[2].items())
        return after[0] - before[0], after[1] - before[1], postgres


_TICKS = os.sysconf("SC_CLK_TCK")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> tuple[float, int]:
    """(CPU seconds used, parent pid) of a process; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0
    # After the command: state ppid … utime (field 14) stime (15), counted from 1.
    return (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[1])


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
