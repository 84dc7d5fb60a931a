"""Alerts raised and statements closed reach the distribution topic through the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc
from omni.distribution.v1 import events_pb2 as dist_events

from libs.messaging import decode_envelope
from libs.testing import plugin
from libs.testing.services import eventually
from services.distribution.domain.settlement import period_of
from tests.integration.distribution.support import (
    build_ruled_world,
    by_rate,
    commissions_of,
    completed,
    order,
)


@pytest.fixture
async def world(api, events, test_stack, unique):
    return await build_ruled_world(api, test_stack, events[1], unique)


EventT = TypeVar("EventT", bound=Message)


async def published(
    stack: plugin.TestStack, kind: type[EventT], keys: set[str], count: int
) -> list[EventT]:
    """The first ``count`` events of ``kind`` on the distribution topic keyed by one of
    ``keys``, waiting until they are there."""
    settings = stack.settings("distribution")
    consumer = AIOKafkaConsumer(
        settings.topic("distribution"),
        bootstrap_servers=settings.require_kafka(),
        group_id=f"dist-events-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    found: list[EventT] = []
    await consumer.start()
    try:

        async def arrived() -> None:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = decode_envelope(record.value)
                    key = (record.key or b"").decode()
                    if envelope.event_type != kind.DESCRIPTOR.full_name or key not in keys:
                        continue
                    message = kind()
                    message.ParseFromString(envelope.payload)
                    found.append(message)
            assert len(found) >= count

        await eventually(arrived, timeout=30)
    finally:
        await consumer.stop()
    return found


async def test_an_alert_raised_is_published(api, events, world, test_stack):
    order_events, _ = events
    w = world
    outside = order(
        w.id("OALERT"),
        channel=4,
        mode=2,
        selling_store=w.id("D"),
        province="Hunan",
        city="Changsha",
        fulfilments=[("F1", w.id("LOC-D"), ["L1", "L2"])],
    )
    await order_events.emit(outside.order_id, completed(outside))
    [first, second] = await published(test_stack, dist_events.AlertRaisedEvent, {w.id("D")}, 2)
    alerts = sorted((first.alert, second.alert), key=lambda a: a.kind)
    assert [a.kind for a in alerts] == [
        pb.ALERT_KIND_OUT_OF_TERRITORY_SHIPMENT,
        pb.ALERT_KIND_OUT_OF_TERRITORY_SALE,
    ]
    for alert in alerts:
        assert alert.dealer_id == w.id("D")
        assert alert.status == pb.ALERT_STATUS_OPEN
        assert alert.evidence.order_id == outside.order_id
        assert (alert.evidence.delivery_province, alert.evidence.delivery_city) == (
            "Hunan",
            "Changsha",
        )
        assert [(t.province, t.city) for t in alert.evidence.territories] == [("Guangdong", "")]
    listed = await api.as_(w.id("HQM")).call("ListAlerts", svc.ListAlertsRequest(unit_id=w.id("D")))
    assert {a.alert_id for a in listed.alerts} == {a.alert_id for a in alerts}


async def test_a_statement_closed_is_published(api, events, world, test_stack):
    order_events, _ = events
    w = world
    now = datetime.now(UTC)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(hour=12)
    period = period_of(last_month)
    sale = order(
        w.id("OCLOSE"),
        channel=3,
        mode=1,
        member_id=w.id("M"),
        selling_store=w.id("LOC-S1"),
        fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
    )
    await order_events.emit(sale.order_id, completed(sale, at=last_month))
    await commissions_of(api, w.id("HQM"), sale.order_id)
    closed = await api.as_(w.id("HQM")).call(
        "ClosePeriod", svc.ClosePeriodRequest(request_id=f"close-{w.u}", hq_id=w.hq, period=period)
    )
    assert closed.statement_count == 2
    keys = {
        f"{pb.BENEFICIARY_KIND_GUIDE}:{w.id('G1')}",
        f"{pb.BENEFICIARY_KIND_STORE}:{w.id('S1')}",
    }
    got = await published(test_stack, dist_events.StatementClosedEvent, keys, 2)
    statements = {(e.statement.beneficiary_kind, e.statement.beneficiary_id): e for e in got}
    guide = statements[(pb.BENEFICIARY_KIND_GUIDE, w.id("G1"))].statement
    store = statements[(pb.BENEFICIARY_KIND_STORE, w.id("S1"))].statement
    assert (guide.period, guide.status) == (period, pb.PERIOD_STATUS_CLOSED)
    assert guide.net_total.amount_minor == by_rate(1, 1) and guide.entry_count == 1
    assert store.commission_total.amount_minor == by_rate(1, 2) + by_rate(1, 3)
    assert store.entry_count == 2
    assert all(e.HasField("close_time") for e in got)
