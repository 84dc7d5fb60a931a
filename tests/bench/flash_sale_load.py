"""The load of the flash-sale benchmark: signed web-mall orders through the gateway's HTTP API
(closed loop, N concurrent clients, every answer's status and latency kept), and direct
CaptureOrder calls at the order service, closed loop (saturation) and open loop (a fixed
arrival rate, latency counted from each call's scheduled time so a slow answer cannot hide
the calls queued behind it), plus the empty-call rate (grpc.health.v1 Check)."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omni.common.v1.money_pb2 import Money
from omni.order.v1 import order_pb2
from omni.order.v1 import order_service_pb2 as order_svc
from omni.order.v1 import order_service_pb2_grpc as order_grpc

from services.gateway.domain import signatures
from tests.bench.flash_sale_seed import CHANNEL, PRICE_FEN, ChannelKey

HTTP_TIMEOUT_S = 60
GRPC_TIMEOUT_S = 30


@dataclass(frozen=True)
class MallOrder:
    order_no: str
    sku_code: str
    quantity: int
    body: bytes


def sale_orders(count: int, skus: list[str], seed: int, prefix: str) -> list[MallOrder]:
    """Paid express web-mall orders, one line each, quantity 1..5, SKU drawn with weight 1/rank
    (a sale has its headline items), delivery somewhere in Shanghai. Deterministic per seed."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(skus))]
    orders = []
    for n in range(count):
        sku = rng.choices(skus, weights)[0]
        quantity = rng.randint(1, 5)
        order_no = f"{prefix}{n:05d}"
        body = {
            "order_no": order_no,
            "member_id": f"FS-M{rng.randint(1, 400):04d}",
            "fulfilment": "express",
            "delivery_address": {
                "province": "Shanghai",
                "city": "Shanghai",
                "street": f"{rng.randint(1, 999)} Flash Rd",
                "latitude": round(rng.uniform(31.10, 31.40), 4),
                "longitude": round(rng.uniform(121.25, 121.60), 4),
            },
            "items": [{"sku_code": sku, "quantity": quantity, "unit_price": PRICE_FEN}],
            "total": quantity * PRICE_FEN,
        }
        orders.append(MallOrder(order_no, sku, quantity, json.dumps(body).encode()))
    return orders


def signed_headers(key: ChannelKey, path: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    nonce = secrets.token_hex(12)
    return {
        "content-type": "application/json",
        "x-omni-key": key.key_id,
        "x-omni-timestamp": str(timestamp),
        "x-omni-nonce": nonce,
        "x-omni-signature": signatures.sign(key.secret, "POST", path, timestamp, nonce, body),
    }


@dataclass
class BurstResult:
    started: float
    finished: float
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    accepted_latencies: list[float] = field(default_factory=list)
    accepted: list[MallOrder] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.finished - self.started


async def http_burst(
    base_url: str, key: ChannelKey, orders: list[MallOrder], clients: int
) -> BurstResult:
    """Every order once (no retries: the figures show what a channel's first attempt gets)."""
    path = f"/v1/channels/{CHANNEL}/mall/orders"
    queue = iter(orders)
    result = BurstResult(started=time.time(), finished=0.0)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S, limits=limits) as http:

        async def client() -> None:
            for order in queue:
                started = time.perf_counter()
                try:
                    response = await http.post(
                        path, content=order.body, headers=signed_headers(key, path, order.body)
                    )
                    status = str(response.status_code)
                except httpx.TimeoutException:
                    status = "client timeout"
                except httpx.HTTPError as error:
                    status = type(error).__name__
                took = time.perf_counter() - started
                result.statuses[status] += 1
                result.latencies.append(took)
                if status.startswith("2"):
                    result.accepted.append(order)
                    result.accepted_latencies.append(took)

        result.started = time.time()
        await asyncio.gather(*(client() for _ in range(clients)))
        result.finished = time.time()
    return result


def capture_request(name: str, skus: list[str], n: int) -> order_svc.CaptureOrderRequest:
    """A paid express order of one unit of an ample SKU."""
    return order_svc.CaptureOrderRequest(
        request_id=f"{name}-{n}",
        channel_id=CHANNEL,
        channel_kind=order_pb2.CHANNEL_KIND_OWN_ONLINE,
        channel_order_id=f"{name}-{n}",
        member_id=f"CAP-M{n % 400:04d}",
        fulfilment_mode=order_pb2.FULFILMENT_MODE_EXPRESS_DELIVERY,
        payment_state=order_pb2.PAYMENT_STATE_PAID_ONLINE,
        delivery_address=order_pb2.Address(
            province="Shanghai",
            city="Shanghai",
            street="1 Capture Rd",
            latitude=31.2,
            longitude=121.45,
        ),
        lines=[
            order_svc.CaptureLine(
                sku_code=skus[n % len(skus)],
                quantity=1,
                unit_price=Money(currency_code="CNY", amount_minor=PRICE_FEN),
            )
        ],
    )


@dataclass
class LoopResult:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    allocated: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


class Capture:
    """CaptureOrder calls at the order service, each a new order."""

    def __init__(self, channel: grpc.aio.Channel, skus: list[str], name: str) -> None:
        self.stub: order_grpc.OrderServiceAsyncStub = order_grpc.OrderServiceStub(channel)
        self.skus = skus
        self.name = name
        self.next = 0

    async def one(self, result: LoopResult, since: float) -> None:
        """One order; its latency is counted from ``since`` (perf_counter)."""
        n = self.next
        self.next += 1
        try:
            answer = await self.stub.CaptureOrder(
                capture_request(self.name, self.skus, n), timeout=GRPC_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            result.errors[error.code().name] += 1
            return
        result.latencies.append(time.perf_counter() - since)
        result.allocated += answer.order.status == order_pb2.ORDER_STATUS_ALLOCATED


async def closed_loop(
    call: Callable[[LoopResult], Awaitable[None]], clients: int, seconds: float
) -> LoopResult:
    """``clients`` callers, each starting its next call when the last one answered, until
    ``seconds`` have passed; the calls under way then finish and count."""
    result = LoopResult()
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            await call(result)

    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


async def capture_closed_loop(capture: Capture, clients: int, seconds: float) -> LoopResult:
    async def call(result: LoopResult) -> None:
        await capture.one(result, time.perf_counter())

    return await closed_loop(call, clients, seconds)


async def capture_open_loop(capture: Capture, rate: float, seconds: float) -> LoopResult:
    """Calls started at a fixed rate whatever the answers; latency from the scheduled start.
    The rate achieved is the calls answered over the time from the first scheduled start
    to the last answer."""
    result = LoopResult()
    count = max(1, round(rate * seconds))
    started = time.perf_counter()
    calls = []
    for i in range(count):
        due = started + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        calls.append(asyncio.create_task(capture.one(result, due)))
    await asyncio.gather(*calls)
    result.seconds = time.perf_counter() - started
    return result


async def health_closed_loop(channel: grpc.aio.Channel, clients: int, seconds: float) -> LoopResult:
    stub = health_pb2_grpc.HealthStub(channel)

    async def call(result: LoopResult) -> None:
        since = time.perf_counter()
        try:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=GRPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            result.errors[error.code().name] += 1
            return
        result.latencies.append(time.perf_counter() - since)

    return await closed_loop(call, clients, seconds)
