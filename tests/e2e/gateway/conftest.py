"""The whole platform as six OS processes (real PostgreSQL, real broker), driven by the
tests only through the gateway's HTTP API; ops set-up (channels, keys, SKUs, stores, stock)
goes through the services' admin RPCs as an operator would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from omni.member.v1 import member_service_pb2_grpc as mem_grpc
from omni.order.v1 import order_service_pb2_grpc as ord_grpc

from libs.config import SERVICES
from libs.local_stack import free_port
from libs.testing.plugin import REPO
from libs.testing.services import ServiceSubprocess, eventually
from tests.integration.gateway.conftest import FakeChannel, Platform


@pytest.fixture(scope="session")
async def world(test_stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    # Kept after the run (pytest's temporary directories rotate between concurrent runs).
    logs = REPO / ".omni" / "e2e-gateway-logs" / test_stack.run_id
    ports = {name: free_port() for name in SERVICES}
    http_port = free_port()
    env = {
        **test_stack.env(),
        "OMNI_GATEWAY_HTTP_PORT": str(http_port),
        "OMNI_GATEWAY_PUSH_POLL_SECONDS": "0.05",
        "OMNI_GATEWAY_PUSH_BACKOFF_SECONDS": "0.05",
    }
    for name, port in ports.items():
        env[f"OMNI_{name.upper()}_GRPC_PORT"] = str(port)
        env[f"OMNI_{name.upper()}_ADDR"] = f"127.0.0.1:{port}"
    processes = [ServiceSubprocess(name, env, logs / f"{name}.log") for name in SERVICES]
    fake = FakeChannel()
    await fake.start()
    channels: list[grpc.aio.Channel] = []
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=15)
    try:
        for process in processes:
            await process.wait_serving(timeout=90)

        async def http_up() -> None:
            (await http.get("/healthz")).raise_for_status()

        await eventually(http_up, timeout=30)
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{ports[name]}")
            for name in ("gateway", "catalog", "inventory", "member", "order")
        ]
        yield Platform(
            gw_grpc.GatewayServiceStub(channels[0]),
            cat_grpc.CatalogServiceStub(channels[1]),
            inv_grpc.InventoryServiceStub(channels[2]),
            mem_grpc.MemberServiceStub(channels[3]),
            ord_grpc.OrderServiceStub(channels[4]),
            http,
            None,  # type: ignore[arg-type]  # no database access from end-to-end tests
            fake,
            addresses={name: f"127.0.0.1:{port}" for name, port in ports.items()},
        )
    finally:
        await http.aclose()
        for channel in channels:
            await channel.close()
        await fake.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(Exception):
                process.wait(timeout=20)
            process.kill()
