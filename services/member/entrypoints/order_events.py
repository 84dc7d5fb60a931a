"""The order service's events, turned into member use cases (history, points, tiers).

Bulk: the consumer hands each run of completed orders (or returns) of a batch over at once,
on the batch's asyncpg transaction; the use case applies them set-based.

No personal data is logged here: events carry ids and amounts only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC

from google.protobuf.message import Message
from omni.order.v1 import events_pb2 as order_events

from libs.consumer import Bulk, Delivery, Subscriber
from libs.pg import PgTransaction
from services.member.adapters.purchase_store import PgPurchaseWork
from services.member.service_layer import purchases


def completed_order(
    delivery: Delivery[order_events.OrderCompletedEvent],
) -> purchases.CompletedOrder:
    event, envelope = delivery.event, delivery.envelope
    order = event.order
    completed_at = (
        event.complete_time if event.HasField("complete_time") else envelope.occurred_at
    ).ToDatetime(tzinfo=UTC)
    return purchases.CompletedOrder(
        order_id=order.order_id,
        member_id=order.member_id,
        channel_id=order.channel_id,
        channel_kind=int(order.channel_kind),
        store_id=order.selling_store_id or order.pickup_store_id,
        currency=order.total.currency_code,
        total_minor=order.total.amount_minor,
        categories=tuple(line.category_code for line in order.lines if line.category_code),
        completed_at=completed_at,
    )


def received_return(
    delivery: Delivery[order_events.OrderReturnReceivedEvent],
) -> purchases.ReceivedReturn:
    event, envelope = delivery.event, delivery.envelope
    received_at = (
        event.receive_time if event.HasField("receive_time") else envelope.occurred_at
    ).ToDatetime(tzinfo=UTC)
    return purchases.ReceivedReturn(
        return_id=event.return_id,
        order_id=event.order_id,
        member_id=event.member_id,
        store_id=event.receiving_location_id,
        currency=event.refund_total.currency_code,
        refund_minor=event.refund_total.amount_minor,
        received_at=received_at,
    )


async def on_orders_completed(
    tx: PgTransaction, deliveries: Sequence[Delivery[order_events.OrderCompletedEvent]]
) -> None:
    await purchases.record_completed_orders(
        PgPurchaseWork(tx), [completed_order(d) for d in deliveries]
    )


async def on_returns_received(
    tx: PgTransaction, deliveries: Sequence[Delivery[order_events.OrderReturnReceivedEvent]]
) -> None:
    await purchases.record_returns(PgPurchaseWork(tx), [received_return(d) for d in deliveries])


SUBSCRIPTIONS: Mapping[type[Message], Subscriber] = {
    order_events.OrderCompletedEvent: Bulk(on_orders_completed),
    order_events.OrderReturnReceivedEvent: Bulk(on_returns_received),
}
