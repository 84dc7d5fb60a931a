"""A distribution service, real producers of order and member events, and an org tree."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import money_pb2
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc
from omni.distribution.v1 import distribution_service_pb2_grpc as svc_grpc
from omni.member.v1 import events_pb2 as member_events
from omni.order.v1 import events_pb2 as order_events
from omni.order.v1 import order_pb2

from libs.db import Database, ensure_database, migrate
from libs.messaging import make_producer, start_with_retry
from libs.outbox_relay import OutboxRelay
from libs.testing.plugin import TestStack
from libs.testing.services import eventually
from libs.unit_of_work import UnitOfWorkFactory
from services.distribution.service_layer.access import DEFAULT_ADMIN_STAFF_ID

REPO = Path(__file__).resolve().parents[3]
ADMIN = DEFAULT_ADMIN_STAFF_ID
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

# Short names for the enums the tests use most.
GUIDE, STORE, DEALER = (
    pb.BENEFICIARY_KIND_GUIDE,
    pb.BENEFICIARY_KIND_STORE,
    pb.BENEFICIARY_KIND_DEALER,
)
OWNING, SELLING, FULFILLING = (
    pb.COMMISSION_ROLE_OWNING_GUIDE,
    pb.COMMISSION_ROLE_SELLING_STORE,
    pb.COMMISSION_ROLE_FULFILLING_STORE,
)
REFERRING, SHIPPING_SHARE = (
    pb.COMMISSION_ROLE_REFERRING_FRANCHISEE,
    pb.COMMISSION_ROLE_FULFILLING_FRANCHISEE,
)
STORE_CH, ONLINE = 3, 1
STORE_SALE, EXPRESS, SAME_CITY, PICKUP, GUIDE_DELIVERY = 1, 2, 3, 4, 5


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def cny(amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount)


def half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


class Producer:
    """Writes events through a UnitOfWork of the producing service (its own scratch database
    and topic) and relays them to the broker, as that service will."""

    def __init__(self, stack: TestStack, service: str) -> None:
        self.settings = stack.settings(service)
        self.service = service

    async def __aenter__(self) -> Producer:
        url = self.settings.database_url()
        await ensure_database(url)
        await migrate(url, REPO / "services" / self.service / "migrations")
        self.db = Database(url, pool_size=2, max_overflow=2)
        self.kafka = make_producer(self.settings.require_kafka())
        await start_with_retry(self.kafka)
        wakeup = asyncio.Event()
        self.relay = OutboxRelay(self.db, self.kafka, self.service, wakeup=wakeup)
        self.uow = UnitOfWorkFactory(
            self.db, self.service, self.settings.topic(self.service), wakeup
        )
        self.task = asyncio.create_task(self.relay.run_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.relay.stop()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.task, timeout=5)
        await self.kafka.stop()
        await self.db.dispose()

    async def emit(self, aggregate_id: str, *events: Message) -> None:
        async with self.uow() as uow:
            for event in events:
                uow.emit(event, aggregate_id=aggregate_id)
            await uow.commit()


@contextlib.asynccontextmanager
async def producers(stack: TestStack) -> AsyncIterator[tuple[Producer, Producer]]:
    async with Producer(stack, "order") as order, Producer(stack, "member") as member:
        yield order, member


class Api:
    """The service's stub, calling as one staff member."""

    def __init__(self, channel: grpc.aio.Channel, staff_id: str) -> None:
        self.stub = svc_grpc.DistributionServiceStub(channel)
        self.metadata = (("x-omni-staff-id", staff_id),)
        self.channel = channel

    def as_(self, staff_id: str) -> Api:
        return Api(self.channel, staff_id)

    async def call(self, method: str, request: Message) -> Message:
        response: Message = await getattr(self.stub, method)(
            request, metadata=self.metadata, timeout=10
        )
        return response


@dataclass
class World:
    """One brand's tree, unique to a test:

    HQ ─ GD (Guangdong) ─ SZ (Shenzhen) ─ S1 (store, LOC-S1), FR (franchisee, LOC-FR)
                       └─ GZ (Guangzhou) ─ S2 (store, LOC-S2)
       └ D (distributor under GD, territory Guangdong, LOC-D)
    Guides G1 (S1), G2 (S2), GF (FR); managers HQM (HQ), SZM (SZ), GZM (GZ).
    """

    u: str

    def id(self, name: str) -> str:
        return f"{name}-{self.u}"

    @property
    def hq(self) -> str:
        return self.id("HQ")


async def build_world(api: Api, u: str) -> World:
    w = World(u)
    admin = api.as_(ADMIN)

    async def unit(uid: str, kind: int, parent: str = "", **fields: object) -> None:
        await admin.call(
            "CreateOrgUnit",
            svc.CreateOrgUnitRequest(
                request_id=f"unit-{w.id(uid)}",
                unit_id=w.id(uid),
                kind=kind,  # type: ignore[arg-type]
                name=uid,
                parent_id=w.id(parent) if parent else "",
                **fields,  # type: ignore[arg-type]
            ),
        )

    await unit("HQ", pb.ORG_UNIT_KIND_HQ)
    await unit("GD", pb.ORG_UNIT_KIND_PROVINCE, "HQ", province="Guangdong")
    await unit("SZ", pb.ORG_UNIT_KIND_CITY, "GD", city="Shenzhen")
    await unit("GZ", pb.ORG_UNIT_KIND_CITY, "GD", city="Guangzhou")
    await unit("S1", pb.ORG_UNIT_KIND_STORE, "SZ", location_id=w.id("LOC-S1"))
    await unit("S2", pb.ORG_UNIT_KIND_STORE, "GZ", location_id=w.id("LOC-S2"))
    await unit(
        "FR",
        pb.ORG_UNIT_KIND_FRANCHISEE,
        "SZ",
        location_id=w.id("LOC-FR"),
        territories=[pb.Territory(province="Guangdong", city="Shenzhen")],
    )
    await unit(
        "D",
        pb.ORG_UNIT_KIND_DISTRIBUTOR,
        "GD",
        location_id=w.id("LOC-D"),
        territories=[pb.Territory(province="Guangdong")],
    )
    for staff_id, unit_id, role in [
        ("G1", "S1", pb.STAFF_ROLE_GUIDE),
        ("G2", "S2", pb.STAFF_ROLE_GUIDE),
        ("GF", "FR", pb.STAFF_ROLE_GUIDE),
        ("GD1", "D", pb.STAFF_ROLE_GUIDE),
        ("HQM", "HQ", pb.STAFF_ROLE_MANAGER),
        ("SZM", "SZ", pb.STAFF_ROLE_MANAGER),
        ("GZM", "GZ", pb.STAFF_ROLE_MANAGER),
    ]:
        await admin.call(
            "CreateStaff",
            svc.CreateStaffRequest(
                request_id=f"staff-{w.id(staff_id)}",
                staff_id=w.id(staff_id),
                unit_id=w.id(unit_id),
                name=staff_id,
                role=role,
            ),
        )
    return w


def rate_of(flow: int, role: int) -> int:
    """The test rules' rate: distinct per (flow, role) so an amount names its rule."""
    return flow * 100 + role * 10


FIXED_FLOW4_SELLING_STORE = 500
SAVED_SHIPPING = 1_200
SHIPPING_SHARE_BP = 5_000


async def set_rules(api: Api, w: World) -> None:
    hq = api.as_(w.id("HQM"))
    for flow in range(1, 6):
        for role in (1, 2, 3, 4):
            request = svc.SetCommissionRuleRequest(
                request_id=f"rule-{w.u}-{flow}-{role}",
                hq_id=w.hq,
                flow=flow,  # type: ignore[arg-type]
                role=role,  # type: ignore[arg-type]
                effective_time=ts(EPOCH),
            )
            if flow == 4 and role == 2:
                request.fixed_amount.CopyFrom(cny(FIXED_FLOW4_SELLING_STORE))
            else:
                request.rate_bp = rate_of(flow, role)
            await hq.call("SetCommissionRule", request)
    await hq.call(
        "SetCommissionRule",
        svc.SetCommissionRuleRequest(
            request_id=f"rule-{w.u}-4-5",
            hq_id=w.hq,
            flow=pb.COMMISSION_FLOW_EXPRESS,
            role=pb.COMMISSION_ROLE_FULFILLING_FRANCHISEE,
            rate_bp=SHIPPING_SHARE_BP,
            saved_shipping_cost=cny(SAVED_SHIPPING),
            effective_time=ts(EPOCH),
        ),
    )


LINES = (("L1", 2, 20_000, "SKU-A"), ("L2", 1, 9_999, "SKU-B"))
ORDER_TOTAL = sum(total for _, _, total, _ in LINES)


def order(
    order_id: str,
    *,
    channel: int,
    mode: int,
    member_id: str = "",
    selling_store: str = "",
    selling_guide: str = "",
    guide_code: str = "",
    pickup_store: str = "",
    province: str = "",
    city: str = "",
    fulfilments: Iterable[tuple[str, str, Iterable[str]]] = (),
    lines: Iterable[tuple[str, int, int, str]] = LINES,
) -> order_pb2.Order:
    built = [
        order_pb2.OrderLine(
            line_id=line_id,
            sku_code=sku,
            quantity=quantity,
            unit_price=cny(total // quantity),
            line_total=cny(total),
        )
        for line_id, quantity, total, sku in lines
    ]
    return order_pb2.Order(
        order_id=order_id,
        channel_id="ch",
        channel_kind=channel,  # type: ignore[arg-type]
        channel_order_id=order_id,
        member_id=member_id,
        fulfilment_mode=mode,  # type: ignore[arg-type]
        selling_store_id=selling_store,
        selling_guide_staff_id=selling_guide,
        referring_guide_code=guide_code,
        pickup_store_id=pickup_store,
        delivery_address=order_pb2.Address(province=province, city=city),
        lines=built,
        fulfilments=[
            order_pb2.FulfilmentSummary(fulfilment_id=f, location_id=loc, line_ids=list(ids))
            for f, loc, ids in fulfilments
        ],
        total=cny(sum(line.line_total.amount_minor for line in built)),
    )


def completed(o: order_pb2.Order, at: datetime | None = None) -> order_events.OrderCompletedEvent:
    return order_events.OrderCompletedEvent(order=o, complete_time=ts(at or datetime.now(UTC)))


def returned(
    order_id: str, return_id: str, lines: Iterable[tuple[str, int]], at: datetime | None = None
) -> order_events.OrderReturnReceivedEvent:
    return order_events.OrderReturnReceivedEvent(
        return_id=return_id,
        order_id=order_id,
        lines=[order_pb2.ReturnedLine(line_id=lid, quantity=q) for lid, q in lines],
        receive_time=ts(at or datetime.now(UTC)),
    )


def registered(member_id: str, guide: str, store: str) -> member_events.MemberRegisteredEvent:
    return member_events.MemberRegisteredEvent(
        member_id=member_id,
        source=member_events.SIGN_UP_SOURCE_GUIDE_ASSISTED,
        owner_guide_staff_id=guide,
        owner_store_id=store,
        register_time=ts(datetime.now(UTC)),
    )


async def wait_member_projected(stack: TestStack, member_id: str) -> None:
    """The member projection has no RPC of its own; wait until its row is in the database."""
    import sqlalchemy as sa

    from libs.testing.services import eventually

    db = Database(stack.settings("distribution").database_url(), pool_size=1, max_overflow=0)
    try:

        async def projected() -> None:
            async with db.session() as session:
                found = await session.execute(
                    sa.text("SELECT 1 FROM member_owners WHERE member_id = :m"), {"m": member_id}
                )
                assert found.first() is not None

        await eventually(projected, timeout=30)
    finally:
        await db.dispose()


async def build_ruled_world(api: Api, stack: TestStack, member_events: Producer, u: str) -> World:
    """The tree with every test rule set, and a member ``M`` owned by guide G1 of S1."""
    w = await build_world(api, u)
    await set_rules(api, w)
    await member_events.emit(w.id("M"), registered(w.id("M"), w.id("G1"), w.id("S1")))
    await wait_member_projected(stack, w.id("M"))
    return w


def by_rate(flow: int, role: int) -> int:
    return half_up(ORDER_TOTAL * rate_of(flow, role), 10_000)


async def commissions_of(api: Api, caller: str, order_id: str) -> svc.GetOrderCommissionsResponse:
    """The order's commissions, once its event has been applied."""

    async def probe() -> svc.GetOrderCommissionsResponse:
        response = await api.as_(caller).call(
            "GetOrderCommissions", svc.GetOrderCommissionsRequest(order_id=order_id)
        )
        assert isinstance(response, svc.GetOrderCommissionsResponse)
        return response

    return await eventually(probe, timeout=30)


def amounts(
    response: svc.GetOrderCommissionsResponse,
) -> dict[tuple[int, int, str], tuple[int, int]]:
    """(role, beneficiary kind, beneficiary) → (paid, clawed back)."""
    return {
        (c.role, c.beneficiary_kind, c.beneficiary_id): (
            c.paid.amount_minor,
            c.clawed_back.amount_minor,
        )
        for c in response.commissions
    }
