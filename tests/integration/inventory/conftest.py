"""A running inventory service (in this process) and direct access to its database, shared
by the inventory integration tests; every test makes its own unique SKUs and locations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import sqlalchemy as sa
from omni.inventory.v1 import events_pb2
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.db import Database
from libs.messaging import decode_envelope
from libs.pg import Pg
from libs.testing.services import running_service
from libs.unit_of_work import UnitOfWorkFactory
from services.inventory.service_layer.tracked_skus import track_sku

ALL_CAPABILITIES = [
    res.CAPABILITY_EXPRESS_SHIPPING,
    res.CAPABILITY_SAME_CITY_DELIVERY,
    res.CAPABILITY_PICKUP,
    res.CAPABILITY_TRANSFER,
]


@dataclass
class Inventory:
    stub: inv_grpc.InventoryServiceAsyncStub
    db: Database
    uow_factory: UnitOfWorkFactory
    port: int
    # The running service's asyncpg pool (an engine of a test's own on it is one more replica).
    pg: Pg

    async def track(self, sku_code: str) -> str:
        """Register a SKU the way catalog's SkuCreatedEvent does (the same use case)."""
        async with self.uow_factory() as uow:
            await track_sku(uow, sku_code, sku_code.rsplit("-", 1)[0], "")
            await uow.commit()
        return sku_code

    async def location(
        self,
        location_id: str,
        *,
        type: res.LocationType.ValueType = res.LOCATION_TYPE_STORE,
        latitude: float = 31.2304,
        longitude: float = 121.4737,
        channels: tuple[str, ...] = ("mall",),
        capabilities: list[res.Capability.ValueType] | None = None,
        safety: int = 0,
        opening_hours: list[res.OpeningHours] | None = None,
    ) -> res.Location:
        created = await self.stub.CreateLocation(
            inv.CreateLocationRequest(
                request_id=f"loc-{location_id}",
                location=res.Location(
                    location_id=location_id,
                    name=f"Location {location_id}",
                    type=type,
                    province="Shanghai",
                    city="Shanghai",
                    latitude=latitude,
                    longitude=longitude,
                    time_zone="Asia/Shanghai",
                    capabilities=ALL_CAPABILITIES if capabilities is None else capabilities,
                    channels=list(channels),
                    default_safety_stock=safety,
                    opening_hours=opening_hours or [],
                ),
            ),
            timeout=10,
        )
        return created.location

    async def receive(self, location_id: str, sku_code: str, quantity: int, key: str) -> None:
        await self.stub.RecordMovement(
            inv.RecordMovementRequest(
                request_id=key,
                location_id=location_id,
                sku_code=sku_code,
                kind=res.MOVEMENT_KIND_RECEIPT,
                quantity=quantity,
            ),
            timeout=10,
        )

    async def level(self, location_id: str, sku_code: str) -> res.StockLevel:
        got = await self.stub.GetStockLevel(
            inv.GetStockLevelRequest(location_id=location_id, sku_code=sku_code), timeout=10
        )
        return got.stock_level

    async def ledger_sum(self, location_id: str, sku_code: str) -> int:
        async with self.db.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        sa.text(
                            "SELECT coalesce(sum(quantity), 0) FROM stock_movements "
                            "WHERE location_id = :l AND sku_code = :s"
                        ),
                        {"l": location_id, "s": sku_code},
                    )
                ).scalar_one()
            )

    async def assert_ledger(self, location_id: str, sku_code: str, on_hand: int) -> None:
        """The invariant: on hand equals the sum of the ledger, and is what we expect."""
        level = await self.level(location_id, sku_code)
        assert level.on_hand == on_hand
        assert await self.ledger_sum(location_id, sku_code) == on_hand

    async def scalar(self, sql: str, **params: object) -> int:
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(sa.text(sql), params)).scalar_one())

    async def stock_events(self, sku_code: str) -> list[events_pb2.StockChangedEvent]:
        """The StockChangedEvents written to the outbox for a SKU, oldest first."""
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT envelope FROM outbox WHERE key = :k "
                    "AND event_type = 'omni.inventory.v1.StockChangedEvent' ORDER BY id"
                ),
                {"k": sku_code},
            )
            found = []
            for (envelope,) in rows:
                event = events_pb2.StockChangedEvent()
                event.ParseFromString(decode_envelope(envelope).payload)
                found.append(event)
            return found

    async def outbox_count(self, event_type: str, like: str) -> int:
        """Outbox rows of a type whose key matches ``like`` (events are keyed by aggregate)."""
        return await self.scalar(
            "SELECT count(*) FROM outbox WHERE event_type = :t AND key LIKE :k",
            t=event_type,
            k=like,
        )


@pytest.fixture(scope="package")
async def inventory(test_stack) -> AsyncIterator[Inventory]:
    settings = test_stack.settings("inventory")
    settings = settings.with_overrides(
        extra={**settings.extra, "OMNI_INVENTORY_SWEEP_INTERVAL_SECONDS": "0.2"}
    )
    async with running_service(settings) as service:
        db = Database(settings.database_url(), pool_size=2, max_overflow=2)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            yield Inventory(
                inv_grpc.InventoryServiceStub(channel),
                db,
                UnitOfWorkFactory(db, "inventory", settings.topic("inventory")),
                service.port,
                service.runtime.pg,
            )
        await db.dispose()
