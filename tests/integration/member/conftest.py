"""One running member service for the package, and a real producer of order events: a
scratch database migrated like the order service's (outbox included), a UnitOfWork whose
topic is the order topic, and an OutboxRelay publishing it to the broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import money_pb2
from omni.member.v1 import events_pb2 as member_events
from omni.member.v1 import member_service_pb2 as pb
from omni.member.v1 import member_service_pb2_grpc as pb_grpc
from omni.order.v1 import events_pb2 as order_events
from omni.order.v1 import order_pb2

from libs.config import all_topics
from libs.db import Database, drop_database, ensure_database, migrate
from libs.messaging import ensure_topics, make_producer, start_with_retry
from libs.outbox_relay import OutboxRelay
from libs.platform_tables import outbox
from libs.service_app import ServiceProcess
from libs.testing.services import running_service
from libs.unit_of_work import UnitOfWorkFactory

REPO = Path(__file__).resolve().parents[3]
PII = (("x-omni-scopes", "member.pii.read"),)
# The signing key the service under test reads from OMNI_MEMBER_CODE_KEY.
CODE_KEY = "integration-test-member-code-key"


@pytest.fixture(scope="package")
async def member_service(test_stack) -> AsyncIterator[ServiceProcess]:
    settings = test_stack.settings("member")
    settings = settings.with_overrides(extra={**settings.extra, "OMNI_MEMBER_CODE_KEY": CODE_KEY})
    async with running_service(settings) as process:
        yield process


@pytest.fixture(scope="package")
async def stub(member_service) -> AsyncIterator[pb_grpc.MemberServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{member_service.port}") as channel:
        yield pb_grpc.MemberServiceStub(channel)


@dataclass
class OrderEventProducer:
    uow_factory: UnitOfWorkFactory
    relay: OutboxRelay
    db: Database

    async def publish(self, event: Message, aggregate_id: str) -> uuid.UUID:
        """Writes the event to the order outbox and relays it; returns its event id."""
        async with self.uow_factory() as uow:
            uow.emit(event, aggregate_id=aggregate_id)
            event_id = uow._events[-1].event_id
            await uow.commit()
        await self.flush()
        return event_id

    async def publish_all(self, events: list[tuple[Message, str]]) -> None:
        """Writes the events in one transaction and relays them: the broker gets them in one
        relay batch, and the consumer (usually) in one fetch."""
        async with self.uow_factory() as uow:
            for event, aggregate_id in events:
                uow.emit(event, aggregate_id=aggregate_id)
            await uow.commit()
        await self.flush()

    async def redeliver(self, event_id: uuid.UUID) -> None:
        """Publish the same envelope again, as a relay does after crashing between the
        broker's ack and marking the row (at-least-once delivery)."""
        async with self.db.session() as session, session.begin():
            await session.execute(
                outbox.update().where(outbox.c.event_id == event_id).values(published_at=None)
            )
        await self.flush()

    async def flush(self) -> None:
        while await self.relay.run_once():
            pass


@pytest.fixture(scope="package")
async def order_events_producer(test_stack, member_service) -> AsyncIterator[OrderEventProducer]:
    settings = test_stack.settings(
        "order", database_prefix=f"omni_t{test_stack.run_id}_memberfixture_"
    )
    url = settings.database_url()
    await ensure_database(url)
    await migrate(url, REPO / "services" / "order" / "migrations")
    db = Database(url, pool_size=2, max_overflow=2)
    await ensure_topics(test_stack.kafka_bootstrap, all_topics(settings.topic_prefix))
    producer = make_producer(test_stack.kafka_bootstrap)
    await start_with_retry(producer)
    relay = OutboxRelay(db, producer, "order")
    try:
        yield OrderEventProducer(UnitOfWorkFactory(db, "order", settings.topic("order")), relay, db)
    finally:
        await producer.stop()
        await db.dispose()
        await drop_database(url)


def cny(amount_minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount_minor)


def ts(moment: datetime | None = None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment or datetime.now(UTC))
    return stamp


def order_completed(
    order_id: str,
    member_id: str,
    total_minor: int,
    categories: tuple[str, ...] = ("APPAREL",),
    when: datetime | None = None,
    currency: str = "CNY",
) -> order_events.OrderCompletedEvent:
    return order_events.OrderCompletedEvent(
        order=order_pb2.Order(
            order_id=order_id,
            channel_id="pos-sh-01",
            channel_kind=order_pb2.CHANNEL_KIND_STORE,
            member_id=member_id,
            selling_store_id="SH01",
            lines=[
                order_pb2.OrderLine(line_id=str(i), sku_code=f"SKU-{c}", category_code=c)
                for i, c in enumerate(categories)
            ],
            total=money_pb2.Money(currency_code=currency, amount_minor=total_minor),
        ),
        complete_time=ts(when),
    )


def return_received(
    return_id: str, order_id: str, member_id: str, refund_minor: int
) -> order_events.OrderReturnReceivedEvent:
    return order_events.OrderReturnReceivedEvent(
        return_id=return_id,
        order_id=order_id,
        member_id=member_id,
        receiving_location_id="SH01",
        refund_total=cny(refund_minor),
        receive_time=ts(),
    )


def fresh_phone() -> str:
    """A mainland mobile number unique to this test session."""
    return "139" + f"{uuid.uuid4().int % 10**8:08d}"


async def register(
    stub: pb_grpc.MemberServiceAsyncStub, unique: str, **fields: object
) -> pb.RegisterMemberResponse:
    request = pb.RegisterMemberRequest(
        request_id=f"reg-{unique}-{uuid.uuid4().hex[:6]}",
        phone=fresh_phone(),
        name="张三丰",
        source=member_events.SIGN_UP_SOURCE_SELF,
    )
    for key, value in fields.items():
        if key == "consents":
            request.consents.extend(value)  # type: ignore[arg-type]
        elif isinstance(value, Message):
            getattr(request, key).CopyFrom(value)
        else:
            setattr(request, key, value)
    return await stub.RegisterMember(request, timeout=10, metadata=PII)


async def ledger_sums(member_service: ServiceProcess, member_id: str) -> tuple[int, int]:
    """(points ledger sum, stored-value ledger sum), read straight from the database."""
    async with member_service.runtime.db.session() as session:
        points = (
            await session.execute(
                sa.text("SELECT coalesce(sum(delta), 0) FROM points_entries WHERE member_id = :m"),
                {"m": member_id},
            )
        ).scalar_one()
        stored = (
            await session.execute(
                sa.text(
                    "SELECT coalesce(sum(amount_minor), 0) FROM stored_value_entries "
                    "WHERE member_id = :m"
                ),
                {"m": member_id},
            )
        ).scalar_one()
    return int(points), int(stored)
