"""Gateway benchmark: signed inbound orders through the HTTP API end to end (gateway → order
service capture, routing and stock hold at inventory → answer), a flash-sale burst far above
capacity, retries of accepted orders, and stock change → channel push lag.

The gateway runs as its own OS process (``python -m services.gateway``) so that its CPU time
is read from ``/proc/<pid>/stat`` (user + system) around each burst: "gateway CPU-ms per
order" is that delta divided by the orders answered 2xx. Catalog, inventory and order run in
this process on the embedded PostgreSQL and broker.

Before and after in one run: with ``OMNI_BENCH_GATEWAY_BASELINE=<path>`` (a checkout of an
earlier commit, with its own ``gen/``, e.g. ``git archive <commit> | tar -x -C <path>`` and
``cp -r gen <path>``) the same bursts run first against that tree's gateway ("before"),
then against this tree's ("after"), on the same platform and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import uvicorn
from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from omni.inventory.v1 import inventory_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2 as inv_svc
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libs.local_stack import free_port
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import eventually, health_status, running_service
from services.gateway.domain import signatures
from tests.bench.report import Report, latency_summary

ORDERS = 400
CONCURRENCY = 8
BURST_ORDERS = 600
BURST_CONCURRENCY = 200
RETRIES = 400
SKUS = 20
STOCK_CHANGES = 120
SECTION = "gateway"
IDLE_SECONDS = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rid() -> str:
    return uuid.uuid4().hex


class Endpoint:
    """The external channel: acknowledges every push and notes when it arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[dict[str, Any], float]] = []
        self.server: uvicorn.Server | None = None

    async def push(self, request: Request) -> JSONResponse:
        self.arrivals.append((await request.json(), time.time()))
        return JSONResponse({"ok": True})

    async def start(self) -> asyncio.Task[None]:
        app = Starlette(routes=[Route("/push", self.push, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.01)
        return task


class GatewayProcess:
    """The gateway of source tree ``tree`` as its own OS process."""

    def __init__(self, tree: Path, env: dict[str, str], log_path: Path) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        full_env = {
            **os.environ,
            **env,
            "OMNI_GATEWAY_GRPC_PORT": str(self.grpc_port),
            "OMNI_GATEWAY_HTTP_PORT": str(self.http_port),
            "OMNI_GATEWAY_METRICS_PORT": "-1",
            "PYTHONPATH": f"{tree}:{tree / 'gen'}",
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            cwd=tree,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def cpu_seconds(self) -> float:
        """User + system CPU of the process so far (/proc/<pid>/stat fields 14 and 15)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    async def wait_serving(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.http_port}") as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(Exception):
                    serving = await health_status(f"127.0.0.1:{self.grpc_port}") == 1
                    if serving and (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError("gateway not serving")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


def profile(gateway: GatewayProcess, label: str) -> subprocess.Popen[bytes] | None:
    """With OMNI_BENCH_PYSPY=<dir>: py-spy samples the gateway during the steady burst
    (a flame graph per label in that directory)."""
    target = os.environ.get("OMNI_BENCH_PYSPY")
    if not target:
        return None
    Path(target).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(gateway.process.pid),
            "--duration",
            "15",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            f"{target}/gateway-{label}.txt",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def signed(key_id: str, secret: str, path: str, body: bytes) -> dict[str, str]:
    ts = int(time.time())
    nonce = rid()
    return {
        "content-type": "application/json",
        "x-omni-key": key_id,
        "x-omni-timestamp": str(ts),
        "x-omni-nonce": nonce,
        "x-omni-signature": signatures.sign(secret, "POST", path, ts, nonce, body),
    }


def mall_body(order_no: str, sku: str) -> bytes:
    return json.dumps(
        {
            "order_no": order_no,
            "member_id": f"m-{order_no}",
            "fulfilment": "express",
            "delivery_address": {"province": "Shanghai", "city": "Shanghai", "street": "1 Rd"},
            "items": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
            "total": 9900,
        }
    ).encode()


@dataclass
class Burst:
    wall: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # 5xx answers without a Retry-After header (a channel cannot tell when to come back).
    bare_5xx: int = 0
    transport_errors: int = 0

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    def cpu_ms_per_ok(self, idle_ms_per_s: float = 0.0) -> str:
        """CPU-ms per 2xx answer, and net of what the idle process burns meanwhile."""
        if not self.ok:
            return "n/a"
        net = (self.cpu * 1000 - idle_ms_per_s * self.wall) / self.ok
        return f"{self.cpu * 1000 / self.ok:.2f} ({net:.2f} net of idle)"

    def histogram(self) -> str:
        found = dict(sorted(self.statuses.items()))
        if self.transport_errors:
            found[0] = self.transport_errors
        return str(found)


async def burst(
    gateway: GatewayProcess,
    key: gw_svc.IssueCredentialResponse,
    path: str,
    bodies: list[bytes],
    concurrency: int,
) -> Burst:
    result = Burst()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=60, limits=limits
    ) as http:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await http.post(
                        path,
                        content=body,
                        headers=signed(key.credential.key_id, key.secret, path, body),
                    )
                except httpx.HTTPError:
                    result.transport_errors += 1
                    continue
                result.latencies.append(time.perf_counter() - started)
                result.statuses[response.status_code] += 1
                if response.status_code >= 500 and "retry-after" not in response.headers:
                    result.bare_5xx += 1

        cpu = gateway.cpu_seconds()
        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - wall
        result.cpu = gateway.cpu_seconds() - cpu
    return result


@dataclass
class Platform:
    stack: TestStack
    peers: dict[str, str]
    catalog: cat_grpc.CatalogServiceAsyncStub
    inventory: inv_grpc.InventoryServiceAsyncStub
    skus: list[str]
    tag: str


async def stock_platform(p: Platform, location: str, channels: list[str]) -> None:
    await p.inventory.CreateLocation(
        inv_svc.CreateLocationRequest(
            request_id=rid(),
            location=inv.Location(
                location_id=location,
                name=location,
                type=inv.LOCATION_TYPE_ECOMMERCE_WAREHOUSE,
                province="Shanghai",
                city="Shanghai",
                latitude=31.2,
                longitude=121.4,
                time_zone="Asia/Shanghai",
                capabilities=[inv.CAPABILITY_EXPRESS_SHIPPING],
                channels=channels,
            ),
        )
    )
    for sku in p.skus:
        await p.inventory.RecordMovement(
            inv_svc.RecordMovementRequest(
                request_id=rid(),
                location_id=location,
                sku_code=sku,
                kind=inv.MOVEMENT_KIND_RECEIPT,
                quantity=100_000,
            )
        )


async def open_channel(
    p: Platform, stub: gw_grpc.GatewayServiceAsyncStub, channel_id: str, push_endpoint: str
) -> gw_svc.IssueCredentialResponse:
    await stub.CreateChannel(
        gw_svc.CreateChannelRequest(
            request_id=rid(),
            channel=gw.Channel(
                channel_id=channel_id,
                kind=gw.CHANNEL_KIND_OWN_ONLINE,
                connector=gw.CONNECTOR_TYPE_WEB_MALL,
                rate_limit_per_second=100_000,
                rate_limit_burst=100_000,
                push_endpoint=push_endpoint,
            ),
        )
    )
    await p.catalog.RegisterChannel(
        cat_svc.RegisterChannelRequest(
            request_id=rid(),
            channel=cat.Channel(channel_id=channel_id, kind=cat.CHANNEL_KIND_ONLINE),
        )
    )
    key: gw_svc.IssueCredentialResponse = await stub.IssueCredential(
        gw_svc.IssueCredentialRequest(
            request_id=rid(),
            owner_kind=gw.OWNER_KIND_CHANNEL,
            owner_id=channel_id,
            channel_id=channel_id,
            scopes=["orders:write"],
        )
    )
    return key


async def inbound_figures(
    p: Platform, tree: Path, label: str, report: Report, endpoint: Endpoint | None
) -> None:
    """Steady orders, a burst far above capacity and retries, against one gateway process;
    with ``endpoint``, the stock push lag too."""
    env = {
        **p.stack.env(),
        **{f"OMNI_{name.upper()}_ADDR": address for name, address in p.peers.items()},
        "OMNI_GATEWAY_PUSH_POLL_SECONDS": "0.05",
    }
    gateway = GatewayProcess(tree, env, REPO / ".omni" / f"bench-gateway-{label}.log")
    try:
        await gateway.wait_serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            stub = gw_grpc.GatewayServiceStub(channel)
            channel_id = f"BENCH-MALL-{p.tag}-{label.upper()}"
            key = await open_channel(p, stub, channel_id, "")
            await stock_platform(p, f"BENCH-WH-{p.tag}-{label.upper()}", [channel_id])
            path = f"/v1/channels/{channel_id}/mall/orders"
            # Warm up (connections, caches, first-call imports) outside the figures.
            await burst(
                gateway,
                key,
                path,
                [mall_body(f"W{p.tag}-{i}", p.skus[i % SKUS]) for i in range(20)],
                4,
            )

            # What the process burns doing nothing (pusher and lag polls, consumers): the
            # per-order figures below include it; this says how much.
            idle_cpu = gateway.cpu_seconds()
            await asyncio.sleep(IDLE_SECONDS)
            idle_ms_per_s = (gateway.cpu_seconds() - idle_cpu) * 1000 / IDLE_SECONDS
            report.add(
                SECTION,
                f"{label}: gateway process idle CPU (pusher, lag monitor, consumers)",
                f"{idle_ms_per_s:.1f} CPU-ms per second",
            )
            steady_bodies = [mall_body(f"B{p.tag}-{i}", p.skus[i % SKUS]) for i in range(ORDERS)]
            profiler = profile(gateway, label)
            steady = await burst(gateway, key, path, steady_bodies, CONCURRENCY)
            if profiler is not None:
                profiler.wait(120)
            report.add(
                SECTION,
                f"{label}: inbound mall orders through HTTP → order capture "
                f"({ORDERS} orders, {CONCURRENCY} concurrent)",
                f"{steady.ok / steady.wall:.1f} orders/s; statuses {steady.histogram()}; "
                f"gateway process {steady.cpu_ms_per_ok(idle_ms_per_s)} CPU-ms per order",
            )
            report.add(
                SECTION, f"{label}: inbound order latency", latency_summary(steady.latencies)
            )

            retries = await burst(gateway, key, path, steady_bodies[:RETRIES], CONCURRENCY)
            report.add(
                SECTION,
                f"{label}: retries of accepted orders (answered by the gateway alone, "
                f"{RETRIES}, {CONCURRENCY} concurrent)",
                f"{retries.ok / retries.wall:.1f} answers/s; statuses {retries.histogram()}; "
                f"gateway process {retries.cpu_ms_per_ok(idle_ms_per_s)} CPU-ms per answer; "
                f"{latency_summary(retries.latencies)}",
            )

            flash = await burst(
                gateway,
                key,
                path,
                [mall_body(f"F{p.tag}-{i}", p.skus[i % SKUS]) for i in range(BURST_ORDERS)],
                BURST_CONCURRENCY,
            )
            report.add(
                SECTION,
                f"{label}: flash-sale burst ({BURST_ORDERS} signed orders, "
                f"{BURST_CONCURRENCY} concurrent)",
                f"statuses {flash.histogram()}; 5xx without Retry-After {flash.bare_5xx}; "
                f"{flash.ok / flash.wall:.1f} accepted orders/s; "
                f"gateway process {flash.cpu_ms_per_ok(idle_ms_per_s)} CPU-ms per accepted order; "
                f"{latency_summary(flash.latencies)}",
            )
            if endpoint is not None:
                await push_lag(p, stub, endpoint, report)
    finally:
        gateway.stop()


async def push_lag(
    p: Platform, stub: gw_grpc.GatewayServiceAsyncStub, endpoint: Endpoint, report: Report
) -> None:
    """Stock change → StockChangedEvent → gateway consumer → push acknowledged."""
    channel_id = f"BENCH-PUSH-{p.tag}"
    await open_channel(p, stub, channel_id, f"http://127.0.0.1:{endpoint.port}/push")
    location = f"BENCH-WH-{p.tag}-PUSH"
    await stock_platform(p, location, [channel_id])
    # Let the pushes caused by the set-up drain, then measure only new ones.
    await asyncio.sleep(2)
    endpoint.arrivals.clear()
    for i in range(STOCK_CHANGES):
        await p.inventory.RecordMovement(
            inv_svc.RecordMovementRequest(
                request_id=rid(),
                location_id=location,
                sku_code=p.skus[i % SKUS],
                kind=inv.MOVEMENT_KIND_RECEIPT,
                quantity=1,
            )
        )
        await asyncio.sleep(0.02)

    async def drained() -> None:
        stock = [a for a in endpoint.arrivals if a[0]["kind"] == "stock"]
        assert len({a[0]["subject"] for a in stock}) == SKUS

    await eventually(drained, timeout=60)
    await asyncio.sleep(1)
    lags = [
        arrived - datetime.fromisoformat(body["event_time"]).timestamp()
        for body, arrived in endpoint.arrivals
        if body["kind"] == "stock"
    ]
    report.add(
        SECTION,
        f"stock change → channel push acknowledged ({STOCK_CHANGES} movements "
        f"over {SKUS} SKUs, coalesced into {len(lags)} pushes)",
        latency_summary(lags),
    )


async def run(stack: TestStack, report: Report) -> None:
    endpoint = Endpoint()
    server_task = await endpoint.start()
    tag = uuid.uuid4().hex[:6].upper()
    async with contextlib.AsyncExitStack() as exits:
        catalog = await exits.enter_async_context(running_service(stack.settings("catalog")))
        inventory = await exits.enter_async_context(running_service(stack.settings("inventory")))
        peers = {
            **stack.settings("gateway").peer_addresses,
            "catalog": f"127.0.0.1:{catalog.port}",
            "inventory": f"127.0.0.1:{inventory.port}",
        }
        order = await exits.enter_async_context(
            running_service(stack.settings("order", peer_addresses=peers))
        )
        peers["order"] = f"127.0.0.1:{order.port}"
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{x.port}") for x in (catalog, inventory)]
        for c in channels:
            exits.push_async_callback(c.close)
        p = Platform(
            stack,
            peers,
            cat_grpc.CatalogServiceStub(channels[0]),
            inv_grpc.InventoryServiceStub(channels[1]),
            [],
            tag,
        )
        style = f"BS-{tag}"
        await p.catalog.CreateStyle(
            cat_svc.CreateStyleRequest(
                request_id=rid(), style=cat.Style(style_code=style, name=style)
            )
        )
        p.skus = [f"{style}-{i:03d}" for i in range(SKUS)]
        for sku in p.skus:
            request = cat_svc.CreateSkuRequest(
                request_id=rid(), sku_code=sku, style_code=style, name=sku
            )
            request.list_price.currency_code = "CNY"
            request.list_price.amount_minor = 9900
            await p.catalog.CreateSku(request)
        for sku in p.skus:

            async def tracked(sku: str = sku) -> None:
                await p.inventory.GetTrackedSku(inv_svc.GetTrackedSkuRequest(sku_code=sku))

            await eventually(tracked, timeout=30)

        baseline = os.environ.get("OMNI_BENCH_GATEWAY_BASELINE")
        if baseline:
            await inbound_figures(p, Path(baseline), "before", report, None)
        await inbound_figures(p, REPO, "after" if baseline else "now", report, endpoint)
    if endpoint.server is not None:
        endpoint.server.should_exit = True
    with contextlib.suppress(Exception):
        await server_task
