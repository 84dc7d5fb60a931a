"""The gateway with the peers it calls (catalog, inventory, member) running in this process,
a signing HTTP client, and a fake channel endpoint (a real HTTP server on 127.0.0.1 that
stands in for the external channel: it records pushes and can be told to fail)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import grpc
import httpx
import pytest
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
from omni.member.v1 import member_service_pb2_grpc as mem_grpc
from omni.order.v1 import order_service_pb2_grpc as ord_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libs.config import Settings
from libs.db import Database
from libs.local_stack import free_port
from libs.pg import Pg
from libs.testing.services import running_service
from services.gateway.domain import signatures

ALL_SCOPES = [
    "orders:write",
    "orders:read",
    "catalog:read",
    "availability:read",
    "returns:write",
    "members:read",
    "members:write",
    "fulfilments:write",
]
CONNECTOR_KIND = {
    "pos": (gw.CONNECTOR_TYPE_POS, gw.CHANNEL_KIND_STORE),
    "web_mall": (gw.CONNECTOR_TYPE_WEB_MALL, gw.CHANNEL_KIND_OWN_ONLINE),
    "tmall": (gw.CONNECTOR_TYPE_TMALL, gw.CHANNEL_KIND_MARKETPLACE),
    "jd": (gw.CONNECTOR_TYPE_JD, gw.CHANNEL_KIND_MARKETPLACE),
    "distributor_shop": (gw.CONNECTOR_TYPE_DISTRIBUTOR_SHOP, gw.CHANNEL_KIND_DISTRIBUTION),
    "local_life": (gw.CONNECTOR_TYPE_LOCAL_LIFE, gw.CHANNEL_KIND_LOCAL_LIFE),
}


def rid() -> str:
    return uuid.uuid4().hex


@dataclass
class Key:
    key_id: str
    secret: str
    channel_id: str


class FakeChannel:
    """The external channel's push endpoint: records what it receives; answers 500 to a
    channel's next ``fail_next[channel]`` pushes."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        # Per channel: how many of its next pushes to answer 500.
        self.fail_next: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        # Per channel: when each push attempt arrived (time.monotonic()), failed or not.
        self.attempts: dict[str, list[float]] = {}
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    async def _push(self, request: Request) -> JSONResponse:
        body = await request.json()
        channel = body["channel_id"]
        self.attempts.setdefault(channel, []).append(time.monotonic())
        if self.fail_next.get(channel, 0) > 0:
            self.fail_next[channel] -= 1
            self.failures[channel] = self.failures.get(channel, 0) + 1
            return JSONResponse({"ok": False}, status_code=500)
        self.received.append(body)
        return JSONResponse({"ok": True})

    def for_channel(self, channel_id: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["channel_id"] == channel_id]

    async def start(self) -> None:
        app = Starlette(routes=[Route("/push", self._push, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


@dataclass
class Platform:
    gateway: gw_grpc.GatewayServiceAsyncStub
    catalog: cat_grpc.CatalogServiceAsyncStub
    inventory: inv_grpc.InventoryServiceAsyncStub
    member: mem_grpc.MemberServiceAsyncStub
    order: ord_grpc.OrderServiceAsyncStub
    http: httpx.AsyncClient
    db: Database
    fake: FakeChannel
    keys: dict[str, Key] = field(default_factory=dict)
    # gRPC address per service, for set-up through services the gateway does not front.
    addresses: dict[str, str] = field(default_factory=dict)
    # The gateway's asyncpg pool and settings (to start another replica beside it).
    pg: Pg | None = None
    gateway_settings: Settings | None = None

    async def channel(
        self,
        channel_id: str,
        connector: str,
        *,
        push: bool = False,
        rate: int = 0,
        burst: int = 0,
        stock_channel: str = "",
    ) -> Key:
        """A gateway channel (registered in catalog too) and a channel key with every scope."""
        ctype, kind = CONNECTOR_KIND[connector]
        await self.gateway.CreateChannel(
            gw_svc.CreateChannelRequest(
                request_id=rid(),
                channel=gw.Channel(
                    channel_id=channel_id,
                    kind=kind,
                    connector=ctype,
                    rate_limit_per_second=rate,
                    rate_limit_burst=burst,
                    push_endpoint=self.fake.url if push else "",
                    stock_channel=stock_channel,
                ),
            )
        )
        online = connector != "pos"
        await self.catalog.RegisterChannel(
            cat_svc.RegisterChannelRequest(
                request_id=rid(),
                channel=cat.Channel(
                    channel_id=channel_id,
                    kind=cat.CHANNEL_KIND_ONLINE if online else cat.CHANNEL_KIND_OFFLINE,
                ),
            )
        )
        return await self.key(channel_id, "channel", channel_id, ALL_SCOPES)

    async def key(
        self,
        channel_id: str,
        owner_kind: str,
        owner_id: str,
        scopes: list[str],
        rate: int = 0,
        burst: int = 0,
    ) -> Key:
        issued = await self.gateway.IssueCredential(
            gw_svc.IssueCredentialRequest(
                request_id=rid(),
                owner_kind=gw.OWNER_KIND_CHANNEL
                if owner_kind == "channel"
                else gw.OWNER_KIND_PARTNER,
                owner_id=owner_id,
                channel_id=channel_id,
                scopes=scopes,
                rate_limit_per_second=rate,
                rate_limit_burst=burst,
            )
        )
        return Key(issued.credential.key_id, issued.secret, channel_id)

    async def post(
        self,
        key: Key,
        path: str,
        payload: Any,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
        secret: str | None = None,
        raw: bytes | None = None,
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        n = nonce or rid()
        sig = signatures.sign(secret or key.secret, "POST", path, ts, n, body)
        return await self.http.post(
            path,
            content=body,
            headers={
                "content-type": "application/json",
                "x-omni-key": key.key_id,
                "x-omni-timestamp": str(ts),
                "x-omni-nonce": n,
                "x-omni-signature": sig,
            },
        )

    async def get(
        self, key: Key, path: str, *, params: list[tuple[str, str]] | None = None
    ) -> httpx.Response:
        full = path + ("?" + urlencode(params) if params else "")
        ts = int(time.time())
        n = rid()
        sig = signatures.sign(key.secret, "GET", full, ts, n, b"")
        return await self.http.get(
            full,
            headers={
                "x-omni-key": key.key_id,
                "x-omni-timestamp": str(ts),
                "x-omni-nonce": n,
                "x-omni-signature": sig,
            },
        )

    async def post_marketplace(
        self, style: str, key: Key, path: str, payload: Any, *, timestamp: int | None = None
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        params = {
            "app_key": key.key_id,
            "timestamp": str(int(time.time()) if timestamp is None else timestamp),
        }
        if style == "tmall":
            params["sign_method"] = "hmac-sha256"
            params["sign"] = signatures.tmall_sign(key.secret, params, body)
        else:
            params["v"] = "2.0"
            params["sign"] = signatures.jd_sign(key.secret, params, body)
        return await self.http.post(
            path + "?" + urlencode(params),
            content=body,
            headers={"content-type": "application/json"},
        )

    async def sku(self, sku_code: str, price: int = 9900) -> None:
        style = sku_code.rsplit("-", 1)[0]
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.catalog.CreateStyle(
                cat_svc.CreateStyleRequest(
                    request_id=rid(), style=cat.Style(style_code=style, name=f"Style {style}")
                )
            )
        request = cat_svc.CreateSkuRequest(
            request_id=rid(), sku_code=sku_code, style_code=style, name=f"SKU {sku_code}"
        )
        request.list_price.currency_code = "CNY"
        request.list_price.amount_minor = price
        await self.catalog.CreateSku(request)

    async def tracked(self, sku_code: str) -> None:
        async def probe() -> None:
            await self.inventory.GetTrackedSku(inv_svc.GetTrackedSkuRequest(sku_code=sku_code))

        from libs.testing.services import eventually

        await eventually(probe, timeout=20)

    async def stocked(self, channel_id: str, unique: str, quantity: int = 50) -> tuple[str, str]:
        """A SKU known to catalog and inventory, and a store serving the channel that holds
        ``quantity`` of it: (sku code, location id)."""
        sku = f"GW-{unique}-M"
        loc = f"STORE-{unique}"
        await self.sku(sku)
        await self.tracked(sku)
        await self.location(loc, [channel_id])
        await self.receive(loc, sku, quantity)
        return sku, loc

    async def location(
        self,
        location_id: str,
        channels: list[str],
        *,
        transfers: bool = False,
        latitude: float = 31.23,
        longitude: float = 121.47,
        city: str = "Shanghai",
    ) -> None:
        capabilities = [
            inv.CAPABILITY_EXPRESS_SHIPPING,
            inv.CAPABILITY_PICKUP,
            inv.CAPABILITY_SAME_CITY_DELIVERY,
        ]
        if transfers:
            capabilities.append(inv.CAPABILITY_TRANSFER)
        await self.inventory.CreateLocation(
            inv_svc.CreateLocationRequest(
                request_id=rid(),
                location=inv.Location(
                    location_id=location_id,
                    name=location_id,
                    type=inv.LOCATION_TYPE_STORE,
                    province="Shanghai" if city == "Shanghai" else "Zhejiang",
                    city=city,
                    latitude=latitude,
                    longitude=longitude,
                    time_zone="Asia/Shanghai",
                    capabilities=capabilities,
                    channels=channels,
                    default_safety_stock=0,
                ),
            )
        )

    async def receive(self, location_id: str, sku_code: str, quantity: int) -> None:
        await self.inventory.RecordMovement(
            inv_svc.RecordMovementRequest(
                request_id=rid(),
                location_id=location_id,
                sku_code=sku_code,
                kind=inv.MOVEMENT_KIND_RECEIPT,
                quantity=quantity,
            )
        )


@pytest.fixture(scope="package")
async def platform(test_stack) -> AsyncIterator[Platform]:
    fake = FakeChannel()
    await fake.start()
    async with contextlib.AsyncExitStack() as stack:
        catalog = await stack.enter_async_context(running_service(test_stack.settings("catalog")))
        inventory = await stack.enter_async_context(
            running_service(test_stack.settings("inventory"))
        )
        member = await stack.enter_async_context(running_service(test_stack.settings("member")))
        peers = {
            **test_stack.settings("gateway").peer_addresses,
            "catalog": f"127.0.0.1:{catalog.port}",
            "inventory": f"127.0.0.1:{inventory.port}",
            "member": f"127.0.0.1:{member.port}",
        }
        order = await stack.enter_async_context(
            running_service(test_stack.settings("order", peer_addresses=peers))
        )
        peers["order"] = f"127.0.0.1:{order.port}"
        http_port = free_port()
        settings = test_stack.settings(
            "gateway",
            gateway_http_port=http_port,
            peer_addresses=peers,
            extra={
                "OMNI_GATEWAY_PUSH_BACKOFF_SECONDS": "0.05",
                "OMNI_GATEWAY_PUSH_MAX_ATTEMPTS": "3",
                "OMNI_GATEWAY_PUSH_POLL_SECONDS": "0.05",
                "OMNI_GATEWAY_LAG_REFRESH_SECONDS": "0.1",
            },
        )
        gateway = await stack.enter_async_context(running_service(settings))
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{p.port}")
            for p in (gateway, catalog, inventory, member, order)
        ]
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10)

        async def http_up() -> None:
            (await http.get("/healthz")).raise_for_status()

        from libs.testing.services import eventually

        await eventually(http_up, timeout=20)
        platform = Platform(
            gw_grpc.GatewayServiceStub(channels[0]),
            cat_grpc.CatalogServiceStub(channels[1]),
            inv_grpc.InventoryServiceStub(channels[2]),
            mem_grpc.MemberServiceStub(channels[3]),
            ord_grpc.OrderServiceStub(channels[4]),
            http,
            gateway.runtime.db,
            fake,
            addresses=dict(peers),
            pg=gateway.runtime.pg,
            gateway_settings=settings,
        )
        try:
            yield platform
        finally:
            await http.aclose()
            for channel in channels:
                await channel.close()
            await fake.stop()
