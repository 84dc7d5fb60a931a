"""Gateway benchmark: signed inbound orders through the HTTP API end to end (gateway → order
service capture, routing and stock hold at inventory → answer), and stock change → channel
push lag (inventory movement → StockChangedEvent → gateway consumer → push acknowledged by a
channel endpoint on 127.0.0.1). Catalog, inventory, order and the gateway run in this
process on the embedded PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import datetime
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
from libs.testing.plugin import TestStack
from libs.testing.services import eventually, running_service
from services.gateway.domain import signatures
from tests.bench.report import Report, latency_summary

ORDERS = 400
CONCURRENCY = 8
SKUS = 20
STOCK_CHANGES = 120
SECTION = "gateway"


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


async def run(stack: TestStack, report: Report) -> None:
    endpoint = Endpoint()
    server_task = await endpoint.start()
    tag = uuid.uuid4().hex[:6].upper()
    channel_id = f"BENCH-MALL-{tag}"
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
        http_port = free_port()
        gateway = await exits.enter_async_context(
            running_service(
                stack.settings(
                    "gateway",
                    gateway_http_port=http_port,
                    peer_addresses=peers,
                    extra={"OMNI_GATEWAY_PUSH_POLL_SECONDS": "0.05"},
                )
            )
        )
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{p.port}") for p in (gateway, catalog, inventory)
        ]
        for c in channels:
            exits.push_async_callback(c.close)
        gateway_stub = gw_grpc.GatewayServiceStub(channels[0])
        catalog_stub = cat_grpc.CatalogServiceStub(channels[1])
        inventory_stub = inv_grpc.InventoryServiceStub(channels[2])

        await gateway_stub.CreateChannel(
            gw_svc.CreateChannelRequest(
                request_id=rid(),
                channel=gw.Channel(
                    channel_id=channel_id,
                    kind=gw.CHANNEL_KIND_OWN_ONLINE,
                    connector=gw.CONNECTOR_TYPE_WEB_MALL,
                    rate_limit_per_second=100_000,
                    rate_limit_burst=100_000,
                    push_endpoint=f"http://127.0.0.1:{endpoint.port}/push",
                ),
            )
        )
        await catalog_stub.RegisterChannel(
            cat_svc.RegisterChannelRequest(
                request_id=rid(),
                channel=cat.Channel(channel_id=channel_id, kind=cat.CHANNEL_KIND_ONLINE),
            )
        )
        key = await gateway_stub.IssueCredential(
            gw_svc.IssueCredentialRequest(
                request_id=rid(),
                owner_kind=gw.OWNER_KIND_CHANNEL,
                owner_id=channel_id,
                channel_id=channel_id,
                scopes=["orders:write"],
            )
        )
        style = f"BS-{tag}"
        await catalog_stub.CreateStyle(
            cat_svc.CreateStyleRequest(
                request_id=rid(), style=cat.Style(style_code=style, name=style)
            )
        )
        skus = [f"{style}-{i:03d}" for i in range(SKUS)]
        for sku in skus:
            request = cat_svc.CreateSkuRequest(
                request_id=rid(), sku_code=sku, style_code=style, name=sku
            )
            request.list_price.currency_code = "CNY"
            request.list_price.amount_minor = 9900
            await catalog_stub.CreateSku(request)
        location = f"BENCH-WH-{tag}"
        await inventory_stub.CreateLocation(
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
                    channels=[channel_id],
                ),
            )
        )
        for sku in skus:

            async def tracked(sku: str = sku) -> None:
                await inventory_stub.GetTrackedSku(inv_svc.GetTrackedSkuRequest(sku_code=sku))

            await eventually(tracked, timeout=30)
            await inventory_stub.RecordMovement(
                inv_svc.RecordMovementRequest(
                    request_id=rid(),
                    location_id=location,
                    sku_code=sku,
                    kind=inv.MOVEMENT_KIND_RECEIPT,
                    quantity=100_000,
                )
            )

        # ---- inbound orders ---------------------------------------------------------
        path = f"/v1/channels/{channel_id}/mall/orders"
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(ORDERS):
            queue.put_nowait(i)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as http:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    body = json.dumps(
                        {
                            "order_no": f"B{tag}-{i}",
                            "member_id": f"m-{i}",
                            "fulfilment": "express",
                            "delivery_address": {
                                "province": "Shanghai",
                                "city": "Shanghai",
                                "street": "1 Bench Rd",
                            },
                            "items": [
                                {"sku_code": skus[i % SKUS], "quantity": 1, "unit_price": 9900}
                            ],
                            "total": 9900,
                        }
                    ).encode()
                    started = time.perf_counter()
                    response = await http.post(
                        path,
                        content=body,
                        headers=signed(key.credential.key_id, key.secret, path, body),
                    )
                    latencies.append(time.perf_counter() - started)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            wall = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            wall = time.perf_counter() - wall
        report.add(
            SECTION,
            f"inbound mall orders/s through HTTP → order capture "
            f"({ORDERS} orders, {CONCURRENCY} concurrent)",
            f"{ORDERS / wall:.1f} orders/s; statuses {dict(sorted(statuses.items()))}",
        )
        report.add(SECTION, "inbound order latency", latency_summary(latencies))

        # ---- stock change → channel push lag -----------------------------------------
        # Let the pushes caused by the orders above drain, then measure only new ones.
        await asyncio.sleep(2)
        endpoint.arrivals.clear()
        for i in range(STOCK_CHANGES):
            await inventory_stub.RecordMovement(
                inv_svc.RecordMovementRequest(
                    request_id=rid(),
                    location_id=location,
                    sku_code=skus[i % SKUS],
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
    if endpoint.server is not None:
        endpoint.server.should_exit = True
    with contextlib.suppress(Exception):
        await server_task
