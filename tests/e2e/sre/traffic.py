"""Traffic that touches every panel of every dashboard, driven as the platform's users would:
channels through the gateway's signed HTTP API (store sales, returns, member sign-ups, web
mall orders that split, wait unfillable or go through a transfer, bad payloads, bad
signatures, bursts over a rate limit), operators through the admin RPCs (set-up, shipping
and delivery, a cancellation, stored value), and a channel endpoint that answers some
pushes and refuses all of another channel's."""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import money_pb2
from omni.distribution.v1 import distribution_pb2 as dist
from omni.distribution.v1 import distribution_service_pb2 as dist_svc
from omni.distribution.v1 import distribution_service_pb2_grpc as dist_grpc
from omni.inventory.v1 import events_pb2 as inv_events
from omni.inventory.v1 import inventory_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2 as inv_svc
from omni.member.v1 import member_service_pb2 as mem_svc
from omni.order.v1 import order_pb2 as ord_pb
from omni.order.v1 import order_service_pb2 as ord_svc

from libs.testing.plugin import TestStack
from libs.testing.services import eventually
from services.distribution.service_layer.access import DEFAULT_ADMIN_STAFF_ID
from tests.e2e.order.test_hold_expired import publish_as_inventory
from tests.integration.gateway.conftest import Key, rid
from tests.integration.gateway.conftest import Platform as Shop

SHANGHAI = {"province": "Shanghai", "city": "Shanghai", "latitude": 31.2305, "longitude": 121.4738}


def cny(amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount)


def phone() -> str:
    return "139" + "".join(random.choices(string.digits, k=8))


@dataclass
class Org:
    """Calls to distribution as one staff member (x-omni-staff-id)."""

    stub: dist_grpc.DistributionServiceAsyncStub
    staff_id: str

    async def call(self, method: str, request: object) -> object:
        metadata = (("x-omni-staff-id", self.staff_id),)
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=10)


class Traffic:
    def __init__(self, shop: Shop, stack: TestStack, unique: str) -> None:
        self.shop = shop
        self.stack = stack
        self.u = unique
        self.pos = f"POS-{unique}"
        self.mall = f"MALL-{unique}"
        # A channel whose endpoint refuses every push: its pushes stay pending and fail.
        self.down = f"DOWN-{unique}"
        self.store_a = f"SA-{unique}"
        self.store_b = f"SB-{unique}"
        self.warehouse = f"WH-{unique}"
        self.sku_a, self.sku_b = f"SRE-{unique}-A", f"SRE-{unique}-B"
        self.sku_w, self.sku_none = f"SRE-{unique}-W", f"SRE-{unique}-N"
        self.guide = f"G-{unique}"
        self.hq_manager = f"HQM-{unique}"
        self.keys: dict[str, Key] = {}
        self._channel = grpc.aio.insecure_channel(shop.addresses["distribution"])
        self.distribution = dist_grpc.DistributionServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    # --- set-up (operators) ----------------------------------------------------------------

    async def set_up(self) -> None:
        shop = self.shop
        self.keys["pos"] = await shop.channel(self.pos, "pos", push=True)
        self.keys["mall"] = await shop.channel(self.mall, "web_mall", push=True)
        self.keys["down"] = await shop.channel(self.down, "web_mall", push=True)
        shop.fake.fail_next[self.down] = 10**9
        await self.location(self.store_a, inv.LOCATION_TYPE_STORE, [self.pos, self.mall, self.down])
        await self.location(self.store_b, inv.LOCATION_TYPE_STORE, [self.mall])
        await self.location(self.warehouse, inv.LOCATION_TYPE_REGIONAL_WAREHOUSE, [self.mall])
        for sku in (self.sku_a, self.sku_b, self.sku_w, self.sku_none):
            await shop.sku(sku)
        for sku in (self.sku_a, self.sku_b, self.sku_w, self.sku_none):
            await shop.tracked(sku)
        await shop.receive(self.store_a, self.sku_a, 50)
        await shop.receive(self.store_b, self.sku_b, 20)
        await shop.receive(self.warehouse, self.sku_w, 10)
        await self.org()

    async def location(self, location_id: str, kind: int, channels: list[str]) -> None:
        capabilities = [
            inv.CAPABILITY_EXPRESS_SHIPPING,
            inv.CAPABILITY_PICKUP,
            inv.CAPABILITY_SAME_CITY_DELIVERY,
            inv.CAPABILITY_TRANSFER,  # receives transfers for pickups
        ]
        if kind == inv.LOCATION_TYPE_REGIONAL_WAREHOUSE:
            capabilities = [inv.CAPABILITY_EXPRESS_SHIPPING, inv.CAPABILITY_TRANSFER]
        await self.shop.inventory.CreateLocation(
            inv_svc.CreateLocationRequest(
                request_id=rid(),
                location=inv.Location(
                    location_id=location_id,
                    name=location_id,
                    type=kind,  # type: ignore[arg-type]
                    province="Shanghai",
                    city="Shanghai",
                    latitude=31.23,
                    longitude=121.47,
                    time_zone="Asia/Shanghai",
                    capabilities=capabilities,
                    channels=channels,
                    default_safety_stock=0,
                ),
            )
        )

    async def org(self) -> None:
        """HQ → Shanghai → Shanghai city → store A (guide G, a commission scheme for own-store
        sales), and a Zhejiang distributor that owns store B's stock: B shipping to Shanghai
        is diversion."""
        admin = Org(self.distribution, DEFAULT_ADMIN_STAFF_ID)
        u = self.u

        async def unit(uid: str, kind: int, parent: str = "", **fields: object) -> None:
            await admin.call(
                "CreateOrgUnit",
                dist_svc.CreateOrgUnitRequest(
                    request_id=rid(),
                    unit_id=f"{uid}-{u}",
                    kind=kind,  # type: ignore[arg-type]
                    name=uid,
                    parent_id=f"{parent}-{u}" if parent else "",
                    **fields,  # type: ignore[arg-type]
                ),
            )

        await unit("HQ", dist.ORG_UNIT_KIND_HQ)
        await unit("SH", dist.ORG_UNIT_KIND_PROVINCE, "HQ", province="Shanghai")
        await unit("SHC", dist.ORG_UNIT_KIND_CITY, "SH", city="Shanghai")
        await unit("STA", dist.ORG_UNIT_KIND_STORE, "SHC", location_id=self.store_a)
        await unit(
            "ZJD",
            dist.ORG_UNIT_KIND_DISTRIBUTOR,
            "HQ",
            location_id=self.store_b,
            territories=[dist.Territory(province="Zhejiang")],
        )
        for staff_id, unit_id, role in (
            (self.guide, f"STA-{u}", dist.STAFF_ROLE_GUIDE),
            (self.hq_manager, f"HQ-{u}", dist.STAFF_ROLE_MANAGER),
        ):
            await admin.call(
                "CreateStaff",
                dist_svc.CreateStaffRequest(
                    request_id=rid(), staff_id=staff_id, unit_id=unit_id, name=staff_id, role=role
                ),
            )
        since = Timestamp()
        since.FromDatetime(datetime(2020, 1, 1, tzinfo=UTC))
        hq = Org(self.distribution, self.hq_manager)
        for commission_role, rate in (
            (dist.COMMISSION_ROLE_OWNING_GUIDE, 500),
            (dist.COMMISSION_ROLE_SELLING_STORE, 300),
        ):
            await hq.call(
                "SetCommissionRule",
                dist_svc.SetCommissionRuleRequest(
                    request_id=rid(),
                    hq_id=f"HQ-{u}",
                    flow=dist.COMMISSION_FLOW_OWN_STORE,
                    role=commission_role,
                    rate_bp=rate,
                    effective_time=since,
                ),
            )

    # --- channels (gateway HTTP) -----------------------------------------------------------

    async def post(self, channel: str, route: str, body: Mapping[str, object], status: int) -> dict:
        path = f"/v1/channels/{self.keys[channel].channel_id}/{route}"
        response = await self.shop.post(self.keys[channel], path, body)
        assert response.status_code == status, response.text
        return dict(response.json())

    async def mall_order(self, number: str, items: list[tuple[str, int]], **extra: object) -> str:
        body: dict[str, object] = {
            "order_no": f"W{number}{self.u}",
            "member_id": self.member_id,
            "fulfilment": "express",
            "delivery_address": {**SHANGHAI, "street": "1 Nanjing Rd"},
            "items": [{"sku_code": s, "quantity": q, "unit_price": 9900} for s, q in items],
            "total": 9900 * sum(q for _, q in items),
            **extra,
        }
        return str((await self.post("mall", "mall/orders", body, 201))["order_id"])

    async def run(self) -> None:
        await self.set_up()
        u = self.u
        joined = await self.post(
            "pos",
            "pos/member-sign-ups",
            {"phone": phone(), "store_id": self.store_a, "guide_staff_id": self.guide},
            201,
        )
        self.member_id = str(joined["member_id"])
        await self.stored_value()

        sale = {
            "sale_id": f"S{u}",
            "store_id": self.store_a,
            "staff_id": self.guide,
            "member_id": self.member_id,
            "lines": [{"sku_code": self.sku_a, "quantity": 2, "unit_price": 9900}],
            "total": 19800,
        }
        sold = await self.post("pos", "pos/sales", sale, 201)
        await self.post("pos", "pos/sales", sale, 200)  # the till retries: a duplicate
        self.sale_id = str(sold["order_id"])

        # Split: A is only at store A, B only at store B (the Zhejiang distributor's stock).
        self.split_id = await self.mall_order("1", [(self.sku_a, 1), (self.sku_b, 1)])
        # Through a transfer: only the warehouse has W, picked up at store A.
        self.transfer_id = await self.mall_order(
            "2",
            [(self.sku_w, 1)],
            fulfilment="pickup",
            pickup_store_id=self.store_a,
            delivery_address=None,
        )
        # Unfillable: nobody has N; it waits in the queue.
        self.unfillable_id = await self.mall_order("3", [(self.sku_none, 1)])
        self.cancelled_id = await self.mall_order("4", [(self.sku_a, 1)])

        await self.refusals()
        await self.deliver(self.split_id)
        await self.shop.order.CancelOrder(
            ord_svc.CancelOrderRequest(
                request_id=rid(), order_id=self.cancelled_id, reason="customer"
            )
        )

        async def counter_return() -> None:
            ret = {
                "return_id": f"R{u}",
                "store_id": self.store_a,
                "order_id": self.sale_id,
                "lines": [{"line_id": "1", "quantity": 1}],
            }
            await self.post("pos", "pos/returns", ret, 201)

        await eventually(counter_return, timeout=30)
        await self.reservations()
        await self.hold_expired_at_inventory()
        await self.settled()

    async def stored_value(self) -> None:
        member = self.shop.member
        await member.RechargeStoredValue(
            mem_svc.RechargeStoredValueRequest(
                request_id=rid(), member_id=self.member_id, amount=cny(50_000), reference="card"
            )
        )
        await member.PayWithStoredValue(
            mem_svc.PayWithStoredValueRequest(
                request_id=rid(), member_id=self.member_id, amount=cny(9_900), reference="till"
            )
        )

    async def refusals(self) -> None:
        """A payload that fails validation, a forged signature, and a burst over a key's rate
        limit."""
        bad = {"order_no": f"BAD{self.u}", "fulfilment": "express", "items": [], "total": 0}
        await self.post("mall", "mall/orders", bad, 422)
        path = f"/v1/channels/{self.mall}/mall/orders"
        forged = await self.shop.post(self.keys["mall"], path, bad, secret="not-the-secret")
        assert forged.status_code == 401, forged.text
        throttled = f"RL-{self.u}"
        limited = await self.shop.channel(throttled, "web_mall", rate=1, burst=1)
        # The bucket is charged before the body is looked at: the second in a row is refused.
        throttled_path = f"/v1/channels/{throttled}/mall/orders"
        answers = [(await self.shop.post(limited, throttled_path, bad)).status_code for _ in "123"]
        assert 429 in answers, answers

    async def routed(self, order_id: str) -> ord_svc.GetOrderResponse:
        async def probe() -> ord_svc.GetOrderResponse:
            got = await self.shop.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
            assert got.fulfilment_orders, ord_pb.OrderStatus.Name(got.order.status)
            return got

        return await eventually(probe, timeout=30)

    async def deliver(self, order_id: str) -> None:
        """The stores ship every fulfilment order and the courier delivers: completed."""
        got = await self.routed(order_id)
        assert len(got.fulfilment_orders) == 2, got.routing
        for fulfilment in got.fulfilment_orders:
            await self.shop.order.ShipFulfilment(
                ord_svc.ShipFulfilmentRequest(
                    request_id=rid(), fulfilment_id=fulfilment.fulfilment_id, assignee="SF1"
                )
            )
            await self.shop.order.ConfirmDelivery(
                ord_svc.ConfirmDeliveryRequest(
                    request_id=rid(), fulfilment_id=fulfilment.fulfilment_id
                )
            )

    async def reservations(self) -> None:
        """A hold inventory refuses (more than it has) and one it lets expire."""
        inventory = self.shop.inventory

        def reserve(order_id: str, quantity: int, ttl: int) -> inv_svc.ReserveRequest:
            line = inv.ReservationLine(
                line_id="1", sku_code=self.sku_b, location_id=self.store_b, quantity=quantity
            )
            return inv_svc.ReserveRequest(
                request_id=rid(),
                order_id=order_id,
                channel=self.mall,
                lines=[line],
                ttl_seconds=ttl,
            )

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await inventory.Reserve(reserve(f"X{self.u}", 10_000, 60))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await inventory.Reserve(reserve(f"E{self.u}", 1, 1))

        async def expired() -> None:
            got = await inventory.GetReservation(
                inv_svc.GetReservationRequest(order_id=f"E{self.u}")
            )
            assert got.reservation.status == inv.RESERVATION_STATUS_EXPIRED

        await eventually(expired, timeout=30)

    async def hold_expired_at_inventory(self) -> None:
        """Inventory's safety-net expiry of an order's own hold (its holds last 7 days, too
        long for a test): the event inventory's sweeper would publish, through a real relay."""
        got = await self.routed(self.transfer_id)
        key = f"{self.transfer_id}.{got.routing.attempt}.1"
        event = inv_events.ReservationExpiredEvent(
            reservation=inv.Reservation(order_id=key, channel=self.mall)
        )
        await publish_as_inventory(self.stack, event, key)

    async def settled(self) -> None:
        """Wait until the consumers have reacted: points, commission and its claw-back, the
        diversion alert, and pushes acknowledged by one channel and refused by the other."""
        hq = Org(self.distribution, self.hq_manager)

        async def reacted() -> None:
            points = await self.shop.member.ListPointsEntries(
                mem_svc.ListPointsEntriesRequest(member_id=self.member_id)
            )
            assert points.entries
            paid = await hq.call(
                "GetOrderCommissions", dist_svc.GetOrderCommissionsRequest(order_id=self.sale_id)
            )
            assert paid.commissions  # type: ignore[attr-defined]
            alerts = await hq.call("ListAlerts", dist_svc.ListAlertsRequest(unit_id=f"HQ-{self.u}"))
            assert alerts.alerts  # type: ignore[attr-defined]
            statuses = {p["data"].get("status") for p in self.shop.fake.for_channel(self.mall)}
            assert "completed" in statuses, statuses
            assert self.shop.fake.failures.get(self.down, 0) > 0

        await eventually(reacted, timeout=60, interval=0.5)
