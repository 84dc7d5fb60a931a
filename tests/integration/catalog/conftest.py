"""One catalog service per test module, a stub to call it and its database to read the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest_asyncio
import sqlalchemy as sa
from google.protobuf.message import Message
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.common.v1 import envelope_pb2

from libs.db import Database
from libs.platform_tables import outbox
from libs.service_app import ServiceProcess
from libs.testing.services import running_service


@dataclass
class Catalog:
    stub: cat_grpc.CatalogServiceAsyncStub
    process: ServiceProcess
    db: Database

    async def events(self, event_type: type[Message], aggregate_id: str) -> list[Message]:
        """The events of this type and aggregate written to the outbox, oldest first."""
        async with self.db.session() as session:
            rows = await session.execute(
                sa.select(outbox.c.envelope)
                .where(
                    outbox.c.event_type == event_type.DESCRIPTOR.full_name,
                    outbox.c.key == aggregate_id,
                )
                .order_by(outbox.c.id)
            )
            found = []
            for (raw,) in rows:
                envelope = envelope_pb2.EventEnvelope.FromString(raw)
                found.append(event_type.FromString(envelope.payload))
            return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def catalog(test_stack) -> AsyncIterator[Catalog]:
    settings = test_stack.settings("catalog")
    async with (
        running_service(settings) as process,
        grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel,
    ):
        db = Database(settings.database_url(), pool_size=2, max_overflow=0)
        try:
            yield Catalog(cat_grpc.CatalogServiceStub(channel), process, db)
        finally:
            await db.dispose()
