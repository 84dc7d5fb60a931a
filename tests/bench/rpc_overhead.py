"""RPC overhead benchmark: CPU-µs per unary RPC on the server and on the client side.

What a captured order pays for every gRPC hop before any business work: the server's
interceptors (span, metrics, log line, input checks, error mapping), the client's (span,
trace context, deadline) and the event loop. Each setup runs its server and its client as
separate OS processes; the client makes CALLS calls with IN_FLIGHT outstanding, reads its
own CPU time (time.process_time, every thread) and the server's (/proc/<pid>/stat, every
thread) around the timed calls, and reports CPU per call. Seven rounds, each visiting
every setup; the median is reported. CPU time, not wall time, so other work on the machine
changes the figures less (but still some: compare setups of one run).

Two RPCs:
- echo: a server with the platform's gRPC mechanics (libs.grpc_server) whose CaptureOrder
  answers from the request (a two-line express order; no database) — the fixed cost of a hop;
  beside it the same echo on a bare grpc.aio server and channel (no interceptors): the floor.
- GetSku on a real catalog process (one read through its database) — where SQL spans show.

    python -m tests.bench rpc_overhead
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.common.v1.money_pb2 import Money
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.config import event_loop
from libs.event_loop import run as run_on_event_loop
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess
from tests.bench.report import Report

SECTION = "rpc overhead"
CALLS = int(os.environ.get("OMNI_BENCH_RPC_CALLS", "3000"))
WARMUP_CALLS = 300
# One call at a time: each pays its whole way through both processes (no call shares a
# wakeup with another), which keeps the figures steady on a busy machine.
IN_FLIGHT = 1
ROUNDS = 7
SKU = "BENCH-RPC-1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WORKDIR = REPO / ".omni" / "bench-rpc"


@dataclass(frozen=True)
class Setup:
    label: str
    env: dict[str, str] = field(default_factory=dict)
    # A plain grpc.aio server and channel: none of the platform's mechanics.
    bare: bool = False


# Settings the platform reads (README, configuration): each setup below switches one thing
# on from the defaults, so its figure minus the defaults' is what that thing costs.
EXPORTED = {"OMNI_TRACE_FILE": str(WORKDIR / "spans.jsonl")}
ECHO_SETUPS = [
    Setup("bare grpc.aio server and channel, no interceptors, uvloop (floor)", bare=True),
    Setup(
        "bare grpc.aio server and channel, no interceptors, asyncio loop",
        {"OMNI_EVENT_LOOP": "asyncio"},
        bare=True,
    ),
    Setup("platform defaults (uvloop, nothing recorded, no line per call)"),
    Setup("defaults + asyncio loop (OMNI_EVENT_LOOP=asyncio)", {"OMNI_EVENT_LOOP": "asyncio"}),
    Setup("defaults + a log line per call (OMNI_LOG_LEVEL=DEBUG)", {"OMNI_LOG_LEVEL": "DEBUG"}),
    Setup("defaults + spans exported (OMNI_TRACE_FILE), all sampled", EXPORTED),
    Setup(
        "defaults + spans exported, 10 % of traces sampled (OMNI_TRACE_SAMPLE_RATIO=0.1)",
        {**EXPORTED, "OMNI_TRACE_SAMPLE_RATIO": "0.1"},
    ),
    Setup(
        "everything on: spans exported, a line per call, asyncio loop",
        {**EXPORTED, "OMNI_LOG_LEVEL": "DEBUG", "OMNI_EVENT_LOOP": "asyncio"},
    ),
]
GET_SKU_SETUPS = [
    Setup("platform defaults"),
    Setup("defaults + spans exported (OMNI_TRACE_FILE)", EXPORTED),
    Setup(
        "defaults + spans exported and SQL spans (OMNI_TRACE_FILE, OMNI_TRACE_SQL=true)",
        {**EXPORTED, "OMNI_TRACE_SQL": "true"},
    ),
]


async def run(stack: TestStack, report: Report) -> None:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    (WORKDIR / "spans.jsonl").unlink(missing_ok=True)
    base_env = {**stack.env(), "OMNI_LOG_LEVEL": "INFO"}
    # Every setup's server runs side by side and each round visits every setup, so a change
    # in the machine's load during the run weighs on all setups alike.
    echo_envs = [{**base_env, **setup.env} for setup in ECHO_SETUPS]
    servers = [
        _start_echo_server(env, setup.bare)
        for env, setup in zip(echo_envs, ECHO_SETUPS, strict=True)
    ]
    try:
        targets = [
            Target({**env, "OMNI_ORDER_ADDR": f"127.0.0.1:{await _port(server)}"}, server.pid)
            for env, server in zip(echo_envs, servers, strict=True)
        ]
        figures = await _measure(targets, "echo", [setup.bare for setup in ECHO_SETUPS])
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)
    for setup, figure in zip(ECHO_SETUPS, figures, strict=True):
        report.add(
            SECTION,
            f"echo CaptureOrder, {setup.label}",
            f"{figure.summary()}; {figure.ratio_to(figures[0]):.2f}x the floor",
        )

    catalog_env = {**base_env, "OMNI_CATALOG_METRICS_PORT": "-1"}
    catalogs: list[ServiceSubprocess] = []
    try:
        # One after the other: the first creates and migrates the database.
        for n, setup in enumerate(GET_SKU_SETUPS):
            catalogs.append(
                ServiceSubprocess(
                    "catalog", {**catalog_env, **setup.env}, WORKDIR / f"catalog-{n}.log"
                )
            )
            await catalogs[-1].wait_serving()
        async with grpc.aio.insecure_channel(catalogs[0].address) as channel:
            await cat_grpc.CatalogServiceStub(channel).CreateSku(
                cat.CreateSkuRequest(
                    request_id="bench-rpc-sku", sku_code=SKU, style_code="B", name="Bench"
                ),
                timeout=30,
            )
        targets = [
            Target(
                {**catalog_env, **setup.env, "OMNI_CATALOG_ADDR": catalog.address},
                catalog.process.pid,
            )
            for setup, catalog in zip(GET_SKU_SETUPS, catalogs, strict=True)
        ]
        figures = await _measure(targets, "get_sku", [False] * len(targets))
    finally:
        for catalog in catalogs:
            catalog.terminate()
        for catalog in catalogs:
            catalog.wait()
    for setup, figure in zip(GET_SKU_SETUPS, figures, strict=True):
        report.add(
            SECTION,
            f"catalog GetSku (one database read), {setup.label}",
            f"{figure.summary()}; {figure.ratio_to(figures[0]):.2f}x the defaults",
        )
    report.add(
        SECTION,
        "how measured",
        f"{CALLS} calls per round, {IN_FLIGHT} in flight, server and client in their own "
        f"processes; median (min..max) of {ROUNDS} rounds; CPU from /proc/<pid>/stat (server) "
        "and time.process_time (client); x the floor / defaults: median over rounds of the "
        "ratio between setups measured in the same round",
    )


@dataclass(frozen=True)
class Target:
    env: dict[str, str]
    server_pid: int


@dataclass
class Figures:
    server_us: list[float] = field(default_factory=list)
    client_us: list[float] = field(default_factory=list)
    calls_per_s: list[float] = field(default_factory=list)

    def totals(self) -> list[float]:
        return [s + c for s, c in zip(self.server_us, self.client_us, strict=True)]

    def ratio_to(self, base: Figures) -> float:
        """Median over rounds of this setup's CPU per call over ``base``'s in the same round
        (a round's setups ran within seconds of each other, under the same load)."""
        return statistics.median(
            mine / theirs for mine, theirs in zip(self.totals(), base.totals(), strict=True)
        )

    def summary(self) -> str:
        server = statistics.median(self.server_us)
        client = statistics.median(self.client_us)
        totals = self.totals()
        return (
            f"server {server:.0f} µs + client {client:.0f} µs = "
            f"{statistics.median(totals):.0f} CPU-µs per call "
            f"({min(totals):.0f}..{max(totals):.0f}; "
            f"{statistics.median(self.calls_per_s):.0f} calls/s)"
        )


def _start_echo_server(env: dict[str, str], bare: bool) -> subprocess.Popen[str]:
    log = open(WORKDIR / "echo-server.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.rpc_overhead", "serve", "bare" if bare else "libs"],
        cwd=REPO,
        env={**os.environ, **env, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    return process


async def _port(server: subprocess.Popen[str]) -> int:
    assert server.stdout is not None
    line = (await asyncio.to_thread(server.stdout.readline)).strip()
    if not line:
        raise RuntimeError(f"echo server did not start: see {WORKDIR / 'echo-server.log'}")
    return int(line)


async def _measure(targets: list[Target], rpc: str, bare: list[bool]) -> list[Figures]:
    figures = [Figures() for _ in targets]
    for _ in range(ROUNDS):
        for target, figure, plain in zip(targets, figures, bare, strict=True):
            result = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "tests.bench.rpc_overhead",
                    "call",
                    rpc,
                    str(target.server_pid),
                    "bare" if plain else "libs",
                ],
                cwd=REPO,
                env={**os.environ, **target.env, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"},
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"client failed: {result.stderr[-3000:]}")
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            figure.server_us.append(measured["server_cpu_s"] / measured["calls"] * 1e6)
            figure.client_us.append(measured["client_cpu_s"] / measured["calls"] * 1e6)
            figure.calls_per_s.append(measured["calls"] / measured["wall_s"])
    return figures


# -- the two processes -------------------------------------------------------------------


class EchoOrders(svc_grpc.OrderServiceServicer):
    """Answers CaptureOrder from the request alone: the RPC without the business."""

    async def CaptureOrder(
        self, request: svc.CaptureOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> svc.CaptureOrderResponse:
        return svc.CaptureOrderResponse(
            order=pb.Order(
                order_id=request.request_id,
                channel_id=request.channel_id,
                channel_order_id=request.channel_order_id,
                status=pb.ORDER_STATUS_CREATED,
            )
        )


def capture_request(n: int) -> svc.CaptureOrderRequest:
    price = Money(currency_code="CNY", amount_minor=9900)
    return svc.CaptureOrderRequest(
        request_id=f"bench-rpc-{n}",
        channel_id="bench-web",
        channel_kind=pb.CHANNEL_KIND_OWN_ONLINE,
        channel_order_id=f"bench-rpc-{n}",
        member_id=f"M-{n % 100}",
        fulfilment_mode=pb.FULFILMENT_MODE_EXPRESS_DELIVERY,
        payment_state=pb.PAYMENT_STATE_PAID_ONLINE,
        delivery_address=pb.Address(
            province="Shanghai", city="Shanghai", street="1 Huaihai Rd", latitude=31.2
        ),
        lines=[
            svc.CaptureLine(sku_code=f"BENCH-{(n + k) % 50:03d}-M", quantity=1, unit_price=price)
            for k in range(2)
        ],
    )


async def serve(bare: bool) -> None:
    from libs.config import Settings

    settings = Settings.from_env("order")
    servicer = EchoOrders()  # type: ignore[abstract]  # the other RPCs answer UNIMPLEMENTED
    if bare:
        server = grpc.aio.server()
        svc_grpc.add_OrderServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
    else:
        from libs.grpc_server import start_grpc_server
        from libs.json_logging import setup_logging
        from libs.telemetry import setup_tracing

        setup_logging("order", settings.log_level)
        setup_tracing(settings)
        started = await start_grpc_server(
            service="order",
            service_names=["omni.order.v1.OrderService"],
            register=lambda s: svc_grpc.add_OrderServiceServicer_to_server(servicer, s),
            host="127.0.0.1",
            port=0,
        )
        server, port = started.server, started.port
    print(port, flush=True)
    await server.wait_for_termination()


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime (fields 14 and 15; after the command's ")" they are the 12th and 13th).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def call(rpc: str, server_pid: int, bare: bool) -> None:
    from libs.config import Settings

    settings = Settings.from_env("gateway")
    target = "order" if rpc == "echo" else "catalog"
    if bare:
        channel = grpc.aio.insecure_channel(settings.peer_addresses[target])
    else:
        from libs.grpc_client import peer_channel
        from libs.telemetry import flush_tracing, setup_tracing

        setup_tracing(settings)
        channel = peer_channel(settings, target)
    one: Callable[[int], Awaitable[object]]
    if rpc == "echo":
        orders = svc_grpc.OrderServiceStub(channel)
        requests = [capture_request(n) for n in range(64)]

        def one(n: int) -> Awaitable[object]:
            return orders.CaptureOrder(requests[n % 64], timeout=10)
    else:
        catalog = cat_grpc.CatalogServiceStub(channel)
        request = cat.GetSkuRequest(sku_code=SKU)

        def one(n: int) -> Awaitable[object]:
            return catalog.GetSku(request, timeout=10)

    async def calls(count: int) -> None:
        async def worker(offset: int) -> None:
            for n in range(offset, count, IN_FLIGHT):
                await one(n)

        await asyncio.gather(*(worker(k) for k in range(IN_FLIGHT)))

    await calls(WARMUP_CALLS)
    server_before, client_before = _process_cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    await calls(CALLS)
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    # The server's span exporter may still be writing: give it its share of the work.
    await asyncio.sleep(0.5)
    server_cpu = _process_cpu_seconds(server_pid) - server_before
    await channel.close()
    if not bare:
        flush_tracing()
    print(
        json.dumps(
            {"calls": CALLS, "server_cpu_s": server_cpu, "client_cpu_s": client_cpu, "wall_s": wall}
        )
    )


def main(argv: list[str]) -> None:
    role, *args = argv
    # The event loop a service process would run on (OMNI_EVENT_LOOP).
    loop = event_loop(os.environ)
    if role == "serve":
        run_on_event_loop(serve(args[0] == "bare"), loop)
    elif role == "call":
        run_on_event_loop(call(args[0], int(args[1]), args[2] == "bare"), loop)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
