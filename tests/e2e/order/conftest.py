"""The order service against the real inventory service (both in this process, on real
PostgreSQL and the real broker), plus a reader of the order topic. Every test makes its own
channel, locations and SKUs, so tests share the services without seeing each other."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from omni.catalog.v1 import catalog_pb2 as cat_res
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.common.v1.money_pb2 import Money
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from omni.order.v1 import events_pb2 as ev
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.config import Settings
from libs.db import Database
from libs.messaging import decode_envelope
from libs.pg import Pg
from libs.testing.services import eventually, running_service
from libs.unit_of_work import UnitOfWorkFactory
from services.order.adapters import order_store
from services.order.domain.order import Order
from services.order.domain.orders import NewOrder

ALL = [
    res.CAPABILITY_EXPRESS_SHIPPING,
    res.CAPABILITY_SAME_CITY_DELIVERY,
    res.CAPABILITY_PICKUP,
    res.CAPABILITY_TRANSFER,
]
# Shanghai and Hangzhou, roughly.
SH = (31.2304, 121.4737)
HZ = (30.2741, 120.1551)
ORDER_EXTRA = {
    "OMNI_ORDER_LEASE_SECONDS": "2",
    "OMNI_ORDER_RECOVERY_INTERVAL_SECONDS": "0.3",
    "OMNI_ORDER_RECOVERY_IDLE_SECONDS": "1",
}
EVENT_TYPES: dict[str, type[Message]] = {
    m.DESCRIPTOR.full_name: m
    for m in (
        ev.OrderCreatedEvent,
        ev.OrderReservedEvent,
        ev.OrderPaidEvent,
        ev.OrderAllocatedEvent,
        ev.OrderUnfillableEvent,
        ev.FulfilmentShippedEvent,
        ev.FulfilmentReadyForPickupEvent,
        ev.FulfilmentDeliveredEvent,
        ev.OrderCompletedEvent,
        ev.OrderCancelledEvent,
        ev.OrderReturnReceivedEvent,
    )
}


@dataclass
class OrderTopic:
    """Everything published on the order topic during the session, by order id (key)."""

    events: dict[str, list[tuple[str, Message]]] = field(default_factory=lambda: defaultdict(list))

    def names(self, order_id: str) -> list[str]:
        return [name.rsplit(".", 1)[-1] for name, _ in self.events.get(order_id, [])]

    async def wait_names(self, order_id: str, expected: list[str], timeout: float = 20) -> None:
        """Wait until exactly these events (in this order) were published for the order."""

        async def probe() -> None:
            assert self.names(order_id) == expected

        await eventually(probe, timeout=timeout)

    def last(self, order_id: str, name: str) -> Any:
        return [m for full, m in self.events[order_id] if full.endswith("." + name)][-1]

    async def wait_for(self, order_id: str, name: str, timeout: float = 20) -> Any:
        async def probe() -> Message:
            for full, message in self.events.get(order_id, []):
                if full.endswith("." + name):
                    return message
            raise AssertionError(f"no {name} for {order_id}; got {self.names(order_id)}")

        return await eventually(probe, timeout=timeout)


@dataclass
class World:
    inventory: inv_grpc.InventoryServiceAsyncStub
    order: svc_grpc.OrderServiceAsyncStub
    catalog: cat_grpc.CatalogServiceAsyncStub
    topic: OrderTopic
    inventory_port: int
    order_port: int
    catalog_port: int
    # The in-process order service's settings and database, for tests that set up or
    # inspect what a crash would leave behind.
    order_settings: Settings
    order_uow: UnitOfWorkFactory
    # The same database on plain asyncpg, as the order service's own use cases reach it.
    order_pg: Pg

    async def sku(self, code: str, category: str = "TOPS") -> str:
        """Create the SKU in catalog (in a style of ``category``) and wait until inventory
        tracks it through catalog's SkuCreatedEvent."""
        style = code.rsplit("-", 1)[0]
        await self.catalog.CreateCategory(
            cat.CreateCategoryRequest(
                request_id=f"category-{category}",
                category=cat_res.Category(category_code=category, name=category),
            ),
            timeout=10,
        )
        await self.catalog.CreateStyle(
            cat.CreateStyleRequest(
                request_id=f"style-{style}",
                style=cat_res.Style(style_code=style, name=style, category_code=category),
            ),
            timeout=10,
        )
        await self.catalog.CreateSku(
            cat.CreateSkuRequest(
                request_id=f"sku-{code}", sku_code=code, style_code=style, name=code
            ),
            timeout=10,
        )

        async def tracked() -> None:
            await self.inventory.GetTrackedSku(inv.GetTrackedSkuRequest(sku_code=code), timeout=5)

        await eventually(tracked, timeout=20, interval=0.05)
        return code

    async def location(
        self,
        location_id: str,
        channel: str,
        *,
        city: str = "Shanghai",
        at: tuple[float, float] = SH,
        capabilities: list[res.Capability.ValueType] | None = None,
        location_type: res.LocationType.ValueType = res.LOCATION_TYPE_STORE,
        opening_hours: list[res.OpeningHours] | None = None,
    ) -> str:
        await self.inventory.CreateLocation(
            inv.CreateLocationRequest(
                request_id=f"loc-{location_id}",
                location=res.Location(
                    location_id=location_id,
                    name=location_id,
                    type=location_type,
                    province=city,
                    city=city,
                    latitude=at[0],
                    longitude=at[1],
                    time_zone="Asia/Shanghai",
                    capabilities=ALL if capabilities is None else capabilities,
                    channels=[channel],
                    default_safety_stock=0,
                    opening_hours=opening_hours or [],
                ),
            ),
            timeout=10,
        )
        return location_id

    async def stock(self, location_id: str, sku_code: str, quantity: int) -> None:
        await self.inventory.RecordMovement(
            inv.RecordMovementRequest(
                request_id=f"rcv-{location_id}-{sku_code}-{quantity}",
                location_id=location_id,
                sku_code=sku_code,
                kind=res.MOVEMENT_KIND_RECEIPT,
                quantity=quantity,
            ),
            timeout=10,
        )

    async def level(self, location_id: str, sku_code: str) -> res.StockLevel:
        got = await self.inventory.GetStockLevel(
            inv.GetStockLevelRequest(location_id=location_id, sku_code=sku_code), timeout=10
        )
        return got.stock_level

    async def levels(self, location_id: str, sku_code: str) -> tuple[int, int]:
        """(on hand, reserved) at a location."""
        level = await self.level(location_id, sku_code)
        return level.on_hand, level.reserved

    async def get(self, order_id: str) -> svc.GetOrderResponse:
        return await self.order.GetOrder(svc.GetOrderRequest(order_id=order_id), timeout=10)

    async def capture(self, request_id: str, **fields: Any) -> svc.CaptureOrderResponse:
        return await self.order.CaptureOrder(capture_request(request_id, **fields), timeout=30)

    async def step(self, rpc: str, fulfilment_id: str, request_id: str, **extra: Any) -> Any:
        request_type = getattr(svc, f"{rpc}Request")
        return await getattr(self.order, rpc)(
            request_type(request_id=request_id, fulfilment_id=fulfilment_id, **extra), timeout=30
        )


def cny(amount: int) -> Money:
    return Money(currency_code="CNY", amount_minor=amount)


def line(sku: str, quantity: int, price: int = 10000, discount: int = 0) -> svc.CaptureLine:
    return svc.CaptureLine(
        sku_code=sku, quantity=quantity, unit_price=cny(price), discount=cny(discount)
    )


def address(city: str = "Shanghai", at: tuple[float, float] | None = SH) -> pb.Address:
    lat, lng = at if at is not None else (0.0, 0.0)
    return pb.Address(
        province=city, city=city, district="D", street="1 Road", latitude=lat, longitude=lng
    )


async def insert_captured(pg: Pg, order: NewOrder, categories: dict[str, str]) -> str:
    """What CaptureOrder writes once the request is checked, without driving the order on
    (for tests that drive it themselves, or leave it to the recovery task)."""
    captured = Order.capture(Order.new_id(), order, categories, datetime.now(UTC))
    async with pg.connection() as conn:
        result = await order_store.insert_new(
            conn,
            [order_store.NewCapture(captured, f"insert-{captured.order_id}", b"test", None, [])],
        )
    assert captured.order_id in result.inserted
    return captured.order_id


def capture_request(request_id: str, **fields: Any) -> svc.CaptureOrderRequest:
    defaults: dict[str, Any] = {
        "channel_kind": pb.CHANNEL_KIND_OWN_ONLINE,
        "channel_order_id": request_id,
        "member_id": "M-1",
        "payment_state": pb.PAYMENT_STATE_PAID_ONLINE,
        "fulfilment_mode": pb.FULFILMENT_MODE_EXPRESS_DELIVERY,
    }
    return svc.CaptureOrderRequest(request_id=request_id, **{**defaults, **fields})


async def _read_topic(consumer: AIOKafkaConsumer, topic: OrderTopic) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                envelope = decode_envelope(record.value)
                message_type = EVENT_TYPES.get(envelope.event_type)
                if message_type is None:
                    continue
                message = message_type()
                message.ParseFromString(envelope.payload)
                topic.events[envelope.aggregate_id].append((envelope.event_type, message))


@pytest.fixture(scope="package")
async def world(test_stack) -> AsyncIterator[World]:
    inv_settings = test_stack.settings("inventory")
    inv_settings = inv_settings.with_overrides(
        extra={**inv_settings.extra, "OMNI_INVENTORY_SWEEP_INTERVAL_SECONDS": "0.5"}
    )
    async with (
        running_service(test_stack.settings("catalog")) as catalog,
        running_service(inv_settings) as inventory,
    ):
        order_settings = test_stack.settings("order")
        order_settings = order_settings.with_overrides(
            peer_addresses={
                **order_settings.peer_addresses,
                "inventory": f"127.0.0.1:{inventory.port}",
                "catalog": f"127.0.0.1:{catalog.port}",
            },
            extra={**order_settings.extra, **ORDER_EXTRA},
        )
        async with running_service(order_settings) as order:
            topic = OrderTopic()
            consumer = AIOKafkaConsumer(
                order_settings.topic("order"),
                bootstrap_servers=test_stack.kafka_bootstrap,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            reader = asyncio.create_task(_read_topic(consumer, topic))
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as cat_channel,
                grpc.aio.insecure_channel(f"127.0.0.1:{inventory.port}") as inv_channel,
                grpc.aio.insecure_channel(f"127.0.0.1:{order.port}") as order_channel,
            ):
                cat_stub: cat_grpc.CatalogServiceAsyncStub = cat_grpc.CatalogServiceStub(
                    cat_channel
                )
                inv_stub: inv_grpc.InventoryServiceAsyncStub = inv_grpc.InventoryServiceStub(
                    inv_channel
                )
                order_stub: svc_grpc.OrderServiceAsyncStub = svc_grpc.OrderServiceStub(
                    order_channel
                )
                order_db = Database(order_settings.database_url(), pool_size=4, max_overflow=0)
                order_pg = Pg(
                    order_settings.database_url(),
                    producer="order",
                    topic=order_settings.topic("order"),
                )
                yield World(
                    inv_stub,
                    order_stub,
                    cat_stub,
                    topic,
                    inventory.port,
                    order.port,
                    catalog.port,
                    order_settings,
                    UnitOfWorkFactory(order_db, "order", order_settings.topic("order")),
                    order_pg,
                )
                await order_pg.close()
                await order_db.dispose()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await consumer.stop()
