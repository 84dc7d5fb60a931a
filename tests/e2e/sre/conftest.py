"""One running platform (six processes, spans to a file) shared by the SRE tests, and a
client that drives it as a channel would: signed HTTP to the gateway, with operator set-up
through the services' admin RPCs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest_asyncio
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from omni.member.v1 import member_service_pb2_grpc as mem_grpc
from omni.order.v1 import order_service_pb2_grpc as ord_grpc

from libs.testing.services import eventually
from tests.e2e.sre.harness import Platform
from tests.integration.gateway.conftest import FakeChannel
from tests.integration.gateway.conftest import Platform as Shop


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def platform(test_stack, tmp_path_factory) -> AsyncIterator[Platform]:
    running = Platform.allocate(test_stack, tmp_path_factory.mktemp("sre"))
    try:
        await running.start()
        yield running
    finally:
        running.stop_all()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def shop(platform: Platform) -> AsyncIterator[Shop]:
    """The gateway's HTTP API with signing, a fake channel endpoint that takes pushes, and
    stubs for set-up."""
    fake = FakeChannel()
    await fake.start()
    http = httpx.AsyncClient(base_url=platform.http, timeout=15)
    names = ("gateway", "catalog", "inventory", "member", "order")
    channels = {name: grpc.aio.insecure_channel(platform.address(name)) for name in names}
    try:

        async def http_up() -> None:
            (await http.get("/healthz")).raise_for_status()

        await eventually(http_up, timeout=30)
        yield Shop(
            gw_grpc.GatewayServiceStub(channels["gateway"]),
            cat_grpc.CatalogServiceStub(channels["catalog"]),
            inv_grpc.InventoryServiceStub(channels["inventory"]),
            mem_grpc.MemberServiceStub(channels["member"]),
            ord_grpc.OrderServiceStub(channels["order"]),
            http,
            None,  # type: ignore[arg-type]  # no database access from end-to-end tests
            fake,
            addresses={name: platform.address(name) for name in platform.grpc_ports},
        )
    finally:
        await http.aclose()
        for channel in channels.values():
            await channel.close()
        await fake.stop()
