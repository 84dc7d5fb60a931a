"""Flash-sale benchmark (issue 13): what one order costs the whole platform in a sale.

The six services run as separate OS processes (``python -m services.<name>``) on the
benchmark's PostgreSQL and broker, with production defaults (INFO logs; spans made as the
services make them, exported only if OTEL_EXPORTER_OTLP_ENDPOINT is set); the OMNI_*
variables the services get are printed in the report.
The world is seeded through public gRPC (flash_sale_seed.py): 10 hot SKUs with 300 units
each across an e-commerce warehouse and two stores serving a web-mall channel.

Measured, in one run:
1. The sale, through the gateway's HTTP API: 1,000 signed web-mall orders (one line of a
   hot SKU drawn with weight 1/rank, quantity 1..5, express, paid online — demand exceeds
   supply, so SKUs sell out mid-burst) from 32 concurrent clients, no retries: accepted
   orders/s (2xx), latency, the status histogram; then, at the order service and inventory,
   oversold (flash_sale_checks.py) and accepted orders missing.
2. CPU-ms per accepted order summed over every process of the platform — the six services,
   the broker, and PostgreSQL (postmaster + every backend and worker, exited ones through
   the postmaster's cutime/cstime) — from /proc/<pid>/stat (processes.py), over the window
   from just before the first order until the platform is quiescent again (outbox
   published, every consumer group caught up, no order mid-workflow, CPU back near idle:
   quiescence.py). The idle rate is measured for a few seconds before the burst; figures
   are given gross and with the idle rate times the window subtracted. Per process too.
   Transactions per accepted order per service database come from pg_stat_database
   (pg_stats.py), less the harness's outbox probes (the handful of ListOrders calls that
   ask for orders mid-workflow at the very end are not subtracted).
3. Direct CaptureOrder at the order service (paid express orders on SKUs with ample stock):
   the saturating rate (closed loop, 32 clients), then an open-loop load at half of it
   (orders/s, p50/p99 from the scheduled start), and the empty gRPC call rate (health
   Check, same server, 32 clients) with the ratio empty calls/s ÷ saturating orders/s; the
   platform is let go quiet before each step.

``OMNI_BENCH_PROFILE=1`` attaches py-spy to every service during the HTTP burst and writes
speedscope profiles to .omni/bench-profiles/<service>.json (profiling.py).

Run alone: ``PYTHONPATH=.:gen .venv/bin/python -m tests.bench flash_sale``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass

import grpc

from libs.config import SERVICES
from libs.testing.plugin import REPO, TestStack
from tests.bench import profiling
from tests.bench.channel_endpoint import ChannelEndpoint
from tests.bench.flash_sale_checks import SaleCheck, check_sale, orders_in_flight
from tests.bench.flash_sale_figures import CaptureFigures, SaleFigures, SaleSetup
from tests.bench.flash_sale_load import (
    Capture,
    LoopResult,
    capture_closed_loop,
    capture_open_loop,
    health_closed_loop,
    http_burst,
    sale_orders,
)
from tests.bench.flash_sale_meters import Meters, Reading, Window
from tests.bench.flash_sale_seed import AMPLE_SKUS, HOT_SKUS, ChannelKey, seed
from tests.bench.pg_stats import STATS_FLUSH_S
from tests.bench.quiescence import Quiescence, QuiescenceWatch
from tests.bench.report import Report
from tests.bench.service_processes import ServiceProcesses, platform_pids

# Fewer for a quick look at a change; the figures name the count used.
ORDERS = int(os.environ.get("OMNI_BENCH_FLASH_SALE_ORDERS", "1000"))
CLIENTS = 32
SEED = 13
SALE_PREFIX = "FS-"
WARMUP_PREFIX = "FW-"
IDLE_SECONDS = 10.0
SATURATION_SECONDS = 15.0
OPEN_LOOP_SECONDS = 20.0
HEALTH_SECONDS = 5.0
DRAIN_TIMEOUT_S = 900.0
SETTLE_TIMEOUT_S = 120.0
LOG_DIR = REPO / ".omni"
PROFILE_DIR = REPO / ".omni" / "bench-profiles"


@dataclass(frozen=True)
class Rig:
    """The running platform and everything the harness uses to drive and watch it."""

    services: ServiceProcesses
    channels: dict[str, grpc.aio.Channel]
    endpoint: ChannelEndpoint
    key: ChannelKey
    meters: Meters
    watch: QuiescenceWatch

    async def quiesce(self, what: str) -> Quiescence:
        quiet = await self.watch.wait(DRAIN_TIMEOUT_S, SETTLE_TIMEOUT_S)
        print(f"{what}: {quiet.note}", flush=True)
        return quiet


async def run(stack: TestStack, report: Report) -> None:
    async with contextlib.AsyncExitStack() as exits:
        rig = await _start(stack, exits)
        await _warm_up(rig)
        # The warm-up's last transactions reach pg_stat_database within PostgreSQL's idle
        # flush interval; they must not be counted as idle.
        await asyncio.sleep(STATS_FLUSH_S)
        idle = Window(await rig.meters.read(), await _read_after(IDLE_SECONDS, rig.meters))
        rig.watch.idle_rate = sum(idle.cpu_rates().values())
        sale = await _sale(rig, idle, exits)
        sale.write(report)
        capture = await _capture(rig)
        capture.write(report)
        _raise_if_broken(sale.check, sale.quiescence)


async def _start(stack: TestStack, exits: contextlib.AsyncExitStack) -> Rig:
    """Endpoint, the six services, the seeded world and the meters; every piece is stopped
    on the way out, whatever happens."""
    endpoint = ChannelEndpoint()
    exits.push_async_callback(endpoint.stop)
    await endpoint.start()
    services = ServiceProcesses(stack, LOG_DIR)
    exits.callback(services.stop)
    services.start()
    await services.wait_serving()
    channels = {s: grpc.aio.insecure_channel(services.address(s)) for s in SERVICES}
    for channel in channels.values():
        exits.push_async_callback(channel.close)
    key = await seed(channels["catalog"], channels["inventory"], channels["gateway"], endpoint.url)
    meters = Meters(stack, services, await platform_pids(stack, services))
    exits.push_async_callback(meters.close)
    await meters.start()
    watch = QuiescenceWatch(
        meters.outbox,
        meters.lag,
        meters.cpu_total,
        endpoint.last_arrival,
        services.check_alive,
        probes=[lambda: orders_in_flight(channels["order"])],
    )
    return Rig(services, channels, endpoint, key, meters, watch)


async def _warm_up(rig: Rig) -> None:
    """Connections, pools and caches in place, as on a shop's busiest day: a few orders of
    ample SKUs, then wait until the platform is quiet again."""
    warmup = sale_orders(CLIENTS, AMPLE_SKUS, SEED, WARMUP_PREFIX)
    await http_burst(rig.services.http_base, rig.key, warmup, CLIENTS)
    await rig.quiesce("before the sale")


async def _read_after(seconds: float, meters: Meters) -> Reading:
    await asyncio.sleep(seconds)
    return await meters.read()


async def _sale(rig: Rig, idle: Window, exits: contextlib.AsyncExitStack) -> SaleFigures:
    """The burst, measured from just before the first order until the platform is quiet
    (transactions until STATS_FLUSH_S later), then checked."""
    profilers = profiling.Profilers(PROFILE_DIR) if profiling.enabled() else None
    if profilers is not None:
        exits.callback(profilers.kill)
        profilers.launch(rig.services.pids)
        await profilers.attached()
    orders = sale_orders(ORDERS, HOT_SKUS, SEED, SALE_PREFIX)
    load = os.getloadavg()
    start = await rig.meters.read()
    burst = await http_burst(rig.services.http_base, rig.key, orders, CLIENTS)
    profiles = profilers.stop() if profilers is not None else []
    quiet = await rig.quiesce("after the sale")
    end = await rig.meters.read()
    # Backends report their last transactions to pg_stat_database within PostgreSQL's
    # idle flush interval; nothing observable says when, so wait that long.
    stats_end = await _read_after(STATS_FLUSH_S, rig.meters)
    check = await check_sale(
        rig.channels["order"],
        rig.channels["inventory"],
        SALE_PREFIX,
        [o.order_no for o in burst.accepted],
    )
    setup = SaleSetup(
        orders=orders,
        clients=CLIENTS,
        seed=SEED,
        measured=list(rig.meters.pids),
        environment=rig.services.service_env_summary(),
        load_average=load,
        profiles=profiles,
    )
    return SaleFigures(
        setup=setup,
        burst=burst,
        check=check,
        idle=idle,
        window=Window(start, end),
        stats_window=Window(start, stats_end),
        quiescence=quiet,
        dead_letters=await rig.meters.dead_lettered(),
        push_lags=rig.endpoint.stock_push_lags(since=start.at),
    )


async def _capture(rig: Rig) -> CaptureFigures:
    """Direct CaptureOrder: saturate (closed loop), then half of that rate (open loop), then
    empty calls; the platform is let go quiet before each step."""
    channel = rig.channels["order"]
    warm = Capture(channel, AMPLE_SKUS, "cap-warm")
    await asyncio.gather(*(warm.one(LoopResult(), time.perf_counter()) for _ in range(CLIENTS)))
    await rig.quiesce("before saturating CaptureOrder")
    saturated = await capture_closed_loop(
        Capture(channel, AMPLE_SKUS, "cap-sat"), CLIENTS, SATURATION_SECONDS
    )
    if not saturated.completed:
        raise RuntimeError(f"no CaptureOrder was answered: {dict(saturated.errors)}")
    await rig.quiesce("after saturating CaptureOrder")
    offered = saturated.rate / 2
    half_load = await capture_open_loop(
        Capture(channel, AMPLE_SKUS, "cap-open"), offered, OPEN_LOOP_SECONDS
    )
    await rig.quiesce("after CaptureOrder at half load")
    health = await health_closed_loop(channel, CLIENTS, HEALTH_SECONDS)
    return CaptureFigures(CLIENTS, saturated, half_load, offered, health)


def _raise_if_broken(check: SaleCheck, quiet: Quiescence) -> None:
    """The figures are written either way; a broken guarantee must still fail the run."""
    problems = []
    if check.oversold:
        problems.append(f"oversold: {check.breaches}")
    if check.missing:
        problems.append(f"{len(check.missing)} accepted orders missing at the order service")
    if not quiet.reached:
        problems.append(f"the platform did not become quiescent: {quiet.note}")
    if problems:
        raise AssertionError("; ".join(problems))
