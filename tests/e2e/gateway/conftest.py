"""The whole platform as six OS processes (real PostgreSQL, real broker), driven by the
tests only through the gateway's HTTP API, as channel adapters would: orders, sign-ups,
the stores' fulfilment work, returns, redemptions, and every read that an assertion makes
(order status with fulfilment orders and returns, availability per store, nearby stock).

Set-up goes through admin RPCs as an operator would: channels and keys (gateway), SKUs and
mappings (catalog), stores and stock (inventory), the organisation and commission rules
(distribution). Commissions have no HTTP API (the distribution admin reads them over gRPC),
so the commission assertions read distribution.GetOrderCommissions — the one gRPC read.

The platform gets its own database and topic prefix, so no other suite's processes share
its consumer groups; one wait reads the distribution process's /metrics (that a member's
registration reached distribution before the member's order completes — the known limit
in services/distribution/README.md), as a condition, never as an assertion."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.distribution.v1 import distribution_pb2 as dist
from omni.distribution.v1 import distribution_service_pb2 as dist_svc
from omni.distribution.v1 import distribution_service_pb2_grpc as dist_grpc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from omni.member.v1 import member_service_pb2_grpc as mem_grpc
from omni.order.v1 import order_service_pb2_grpc as ord_grpc
from prometheus_client.parser import text_string_to_metric_families

from libs.config import SERVICES, Settings
from libs.db import drop_database
from libs.local_stack import free_port
from libs.testing.plugin import REPO
from libs.testing.services import ServiceSubprocess, eventually
from tests.integration.gateway.conftest import FakeChannel, Key, Platform

ADMIN = "platform-admin"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
# Commission rules of the test organisations: a distinct rate per (flow, role), so an
# amount names the rule that produced it.
ROLES = (
    dist.COMMISSION_ROLE_OWNING_GUIDE,
    dist.COMMISSION_ROLE_SELLING_STORE,
    dist.COMMISSION_ROLE_FULFILLING_STORE,
)


def rate_bp(flow: int, role: int) -> int:
    return flow * 100 + role * 10


def commission(total_minor: int, flow: int, role: int) -> int:
    """The documented rounding: rate x total / 10 000, half up."""
    return (2 * total_minor * rate_bp(flow, role) + 10_000) // 20_000


@dataclass
class Org:
    """One brand: HQ → Shanghai → Shanghai city → stores S1 and S2 (inventory locations
    ST1 and ST2), guide G1 in S1 and G2 in S2, manager HQM."""

    u: str

    def id(self, name: str) -> str:
        return f"{name}-{self.u}"

    @property
    def hq(self) -> str:
        return self.id("HQ")


@dataclass
class World(Platform):
    distribution: Any = None
    distribution_metrics: str = ""
    members_registered: int = 0

    # --- set-up (operator RPCs) ----------------------------------------------------------

    async def as_staff(self, method: str, request: Any, staff_id: str) -> Any:
        return await getattr(self.distribution, method)(
            request, metadata=(("x-omni-staff-id", staff_id),), timeout=15
        )

    async def organisation(self, u: str) -> Org:
        org = Org(u)

        async def unit(uid: str, kind: int, parent: str = "", **fields: Any) -> None:
            await self.as_staff(
                "CreateOrgUnit",
                dist_svc.CreateOrgUnitRequest(
                    request_id=f"unit-{org.id(uid)}",
                    unit_id=org.id(uid),
                    kind=kind,  # type: ignore[arg-type]
                    name=uid,
                    parent_id=org.id(parent) if parent else "",
                    **fields,
                ),
                ADMIN,
            )

        await unit("HQ", dist.ORG_UNIT_KIND_HQ)
        await unit("SH", dist.ORG_UNIT_KIND_PROVINCE, "HQ", province="Shanghai")
        await unit("SHC", dist.ORG_UNIT_KIND_CITY, "SH", city="Shanghai")
        await unit("S1", dist.ORG_UNIT_KIND_STORE, "SHC", location_id=org.id("ST1"))
        await unit("S2", dist.ORG_UNIT_KIND_STORE, "SHC", location_id=org.id("ST2"))
        for staff_id, unit_id, staff_role in (
            ("G1", "S1", dist.STAFF_ROLE_GUIDE),
            ("G2", "S2", dist.STAFF_ROLE_GUIDE),
            ("HQM", "HQ", dist.STAFF_ROLE_MANAGER),
        ):
            await self.as_staff(
                "CreateStaff",
                dist_svc.CreateStaffRequest(
                    request_id=f"staff-{org.id(staff_id)}",
                    staff_id=org.id(staff_id),
                    unit_id=org.id(unit_id),
                    name=staff_id,
                    role=staff_role,
                ),
                ADMIN,
            )
        effective = Timestamp()
        effective.FromDatetime(EPOCH)
        for flow in range(1, 6):
            for role in ROLES:
                await self.as_staff(
                    "SetCommissionRule",
                    dist_svc.SetCommissionRuleRequest(
                        request_id=f"rule-{u}-{flow}-{role}",
                        hq_id=org.hq,
                        flow=flow,  # type: ignore[arg-type]
                        role=role,
                        rate_bp=rate_bp(flow, role),
                        effective_time=effective,
                    ),
                    org.id("HQM"),
                )
        return org

    async def commissions(self, org: Org, order_id: str) -> dist_svc.GetOrderCommissionsResponse:
        """The distribution admin's view of an order's commissions (gRPC: there is no HTTP
        API for commissions), once the completed order was paid."""

        async def paid() -> dist_svc.GetOrderCommissionsResponse:
            got: dist_svc.GetOrderCommissionsResponse = await self.as_staff(
                "GetOrderCommissions",
                dist_svc.GetOrderCommissionsRequest(order_id=order_id),
                org.id("HQM"),
            )
            assert got.commissions, f"no commissions yet for {order_id}"
            return got

        return await eventually(paid, timeout=60)

    async def members_known_to_distribution(self) -> None:
        """Wait until distribution applied every MemberRegisteredEvent of this session
        (an order completing before its member's registration reached distribution is
        attributed without the owning guide — a documented limit, not what is tested)."""

        async def applied() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                text = (await client.get(self.distribution_metrics)).text
            count = 0.0
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = sample.labels
                    if (
                        sample.name == "omni_consumer_events_total"
                        and labels.get("group", "").endswith("member-events")
                        and labels.get("event_type", "").endswith("MemberRegisteredEvent")
                        and labels.get("outcome") == "applied"
                    ):
                        count += sample.value
            assert count >= self.members_registered, (count, self.members_registered)

        await eventually(applied, timeout=60)

    # --- channel actions and reads (HTTP only) -------------------------------------------

    async def sign_up(self, pos: Key, store: str, guide: str) -> str:
        """A customer joins at the till with a guide (POS, HTTP); returns the member id."""
        phone = "+86139" + str(uuid.uuid4().int % 10**8).zfill(8)
        joined = await self.post(
            pos,
            f"/v1/channels/{pos.channel_id}/pos/member-sign-ups",
            {"phone": phone, "name": "Wang Fang", "store_id": store, "guide_staff_id": guide},
        )
        assert joined.status_code == 201, joined.text
        assert joined.json()["owner_guide_staff_id"] == guide
        self.members_registered += 1
        return str(joined.json()["member_id"])

    async def view(self, key: Key, channel_order_id: str) -> dict[str, Any]:
        response = await self.get(key, f"/open/v1/orders/{channel_order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def routed(self, key: Key, channel_order_id: str) -> dict[str, Any]:
        """The order as its channel sees it once the platform routed and allocated it."""

        async def probe() -> dict[str, Any]:
            found = await self.view(key, channel_order_id)
            assert found["fulfilments"], found["platform_status"]
            return found

        return await eventually(probe, timeout=60)

    async def until_status(self, key: Key, channel_order_id: str, status: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any]:
            found = await self.view(key, channel_order_id)
            assert found["platform_status"] == status, found
            return found

        return await eventually(probe, timeout=60)

    async def store_reports(
        self,
        pos: Key,
        store: str,
        order_id: str,
        fulfilment_id: str,
        action: str,
        tracking: str = "",
    ) -> dict[str, Any]:
        """The store's POS reports its work on a fulfilment order routed to it."""
        response = await self.post(
            pos,
            f"/v1/channels/{pos.channel_id}/pos/fulfilment-updates",
            {
                "store_id": store,
                "order_id": order_id,
                "fulfilment_id": fulfilment_id,
                "action": action,
                "tracking": tracking,
            },
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def stock_at(self, key: Key, sku: str) -> dict[str, tuple[int, int]]:
        """(available, on hand) per store serving the key's channel."""
        response = await self.get(
            key,
            "/open/v1/availability",
            params=[("sku_codes", sku), ("include_locations", "true")],
        )
        assert response.status_code == 200, response.text
        [item] = response.json()["skus"]
        return {x["location_id"]: (x["available"], x["on_hand"]) for x in item["locations"]}


@pytest.fixture(scope="package")
async def world(test_stack) -> AsyncIterator[World]:
    # Kept after the run (pytest's temporary directories rotate between concurrent runs).
    logs = REPO / ".omni" / "e2e-gateway-logs" / test_stack.run_id
    ports = {name: free_port() for name in SERVICES}
    http_port = free_port()
    metrics_port = free_port()
    env = {
        **test_stack.env(),
        # Its own databases and topics: no other suite's processes join its consumer groups.
        "OMNI_DATABASE_PREFIX": f"omni_t{test_stack.run_id}_gwe2e_",
        "OMNI_TOPIC_PREFIX": f"t{test_stack.run_id}.gwe2e.",
        "OMNI_GATEWAY_HTTP_PORT": str(http_port),
        "OMNI_GATEWAY_PUSH_POLL_SECONDS": "0.05",
        "OMNI_GATEWAY_PUSH_BACKOFF_SECONDS": "0.05",
        "OMNI_DISTRIBUTION_METRICS_PORT": str(metrics_port),
    }
    for name, port in ports.items():
        env[f"OMNI_{name.upper()}_GRPC_PORT"] = str(port)
        env[f"OMNI_{name.upper()}_ADDR"] = f"127.0.0.1:{port}"
    processes = [ServiceSubprocess(name, env, logs / f"{name}.log") for name in SERVICES]
    fake = FakeChannel()
    await fake.start()
    channels: list[grpc.aio.Channel] = []
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
    try:
        for process in processes:
            await process.wait_serving(timeout=120)

        async def http_up() -> None:
            (await http.get("/healthz")).raise_for_status()

        await eventually(http_up, timeout=30)
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{ports[name]}")
            for name in ("gateway", "catalog", "inventory", "member", "order", "distribution")
        ]
        yield World(
            gw_grpc.GatewayServiceStub(channels[0]),
            cat_grpc.CatalogServiceStub(channels[1]),
            inv_grpc.InventoryServiceStub(channels[2]),
            mem_grpc.MemberServiceStub(channels[3]),
            ord_grpc.OrderServiceStub(channels[4]),
            http,
            None,  # type: ignore[arg-type]  # no database access from end-to-end tests
            fake,
            addresses={name: f"127.0.0.1:{port}" for name, port in ports.items()},
            distribution=dist_grpc.DistributionServiceStub(channels[5]),
            distribution_metrics=f"http://127.0.0.1:{metrics_port}/metrics",
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
        for name in SERVICES:
            with contextlib.suppress(Exception):
                await drop_database(Settings.from_env(name, env).database_url())
