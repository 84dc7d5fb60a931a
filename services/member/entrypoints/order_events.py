"""The order service's events, turned into member use cases (history, points, tiers).

No personal data is logged here: events carry ids and amounts only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

from google.protobuf.message import Message
from omni.common.v1 import envelope_pb2
from omni.order.v1 import events_pb2 as order_events

from libs.consumer import Handler
from libs.unit_of_work import UnitOfWork
from services.member.service_layer import purchases


async def on_order_completed(
    uow: UnitOfWork, event: order_events.OrderCompletedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    order = event.order
    completed_at = (
        event.complete_time if event.HasField("complete_time") else envelope.occurred_at
    ).ToDatetime(tzinfo=UTC)
    await purchases.record_completed_order(
        uow,
        purchases.CompletedOrder(
            order_id=order.order_id,
            member_id=order.member_id,
            channel_id=order.channel_id,
            channel_kind=int(order.channel_kind),
            store_id=order.selling_store_id or order.pickup_store_id,
            currency=order.total.currency_code,
            total_minor=order.total.amount_minor,
            categories=tuple(line.category_code for line in order.lines if line.category_code),
            completed_at=completed_at,
        ),
    )


async def on_return_received(
    uow: UnitOfWork,
    event: order_events.OrderReturnReceivedEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    received_at = (
        event.receive_time if event.HasField("receive_time") else envelope.occurred_at
    ).ToDatetime(tzinfo=UTC)
    await purchases.record_return(
        uow,
        purchases.ReceivedReturn(
            return_id=event.return_id,
            order_id=event.order_id,
            member_id=event.member_id,
            store_id=event.receiving_location_id,
            currency=event.refund_total.currency_code,
            refund_minor=event.refund_total.amount_minor,
            received_at=received_at,
        ),
    )


SUBSCRIPTIONS: Mapping[type[Message], Handler] = {
    order_events.OrderCompletedEvent: on_order_completed,
    order_events.OrderReturnReceivedEvent: on_return_received,
}
