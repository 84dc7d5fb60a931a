"""Order's events, turned into commission use cases.

Bulk: each run of completed orders (or returns) of a batch is handed over at once, on the
batch's asyncpg transaction; the use case applies them set-based."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import envelope_pb2
from omni.order.v1 import events_pb2 as order_events

from libs.consumer import Bulk, Delivery, Subscriber
from libs.pg import PgTransaction
from services.distribution.adapters.commission_store import PgCommissionWork
from services.distribution.adapters.proto import from_timestamp
from services.distribution.domain.commission_rules import Channel, Handover, Line, Mode
from services.distribution.service_layer import commissions
from services.distribution.service_layer.access import DistributionConfig


def _when(event_time: object, envelope: envelope_pb2.EventEnvelope) -> datetime:
    # The business time of the event; the envelope's commit time when the producer left it out.
    if isinstance(event_time, Timestamp) and (event_time.seconds or event_time.nanos):
        return from_timestamp(event_time)
    if envelope.HasField("occurred_at"):
        return from_timestamp(envelope.occurred_at)
    return datetime.now(UTC)


def completed_order(
    event: order_events.OrderCompletedEvent, envelope: envelope_pb2.EventEnvelope
) -> commissions.CompletedOrder:
    order = event.order
    currency = order.total.currency_code or next(
        (line.line_total.currency_code for line in order.lines if line.line_total.currency_code),
        "CNY",
    )
    return commissions.CompletedOrder(
        order_id=order.order_id,
        member_id=order.member_id,
        channel=Channel(order.channel_kind)
        if order.channel_kind in Channel._value2member_map_
        else Channel.UNSPECIFIED,
        mode=Mode(order.fulfilment_mode)
        if order.fulfilment_mode in Mode._value2member_map_
        else Mode.UNSPECIFIED,
        handover=Handover(order.endless_aisle_handover)
        if order.endless_aisle_handover in Handover._value2member_map_
        else Handover.UNSPECIFIED,
        selling_store_id=order.selling_store_id,
        selling_guide_staff_id=order.selling_guide_staff_id,
        referring_guide_code=order.referring_guide_code,
        pickup_store_id=order.pickup_store_id,
        delivery_province=order.delivery_address.province.strip(),
        delivery_city=order.delivery_address.city.strip(),
        lines=tuple(
            Line(
                line_id=line.line_id,
                quantity=max(1, line.quantity),
                total_minor=line.line_total.amount_minor,
                sku_code=line.sku_code,
            )
            for line in order.lines
        ),
        fulfilments=tuple(
            commissions.Fulfilment(f.fulfilment_id, f.location_id, tuple(f.line_ids))
            for f in order.fulfilments
        ),
        currency=currency,
        total_minor=order.total.amount_minor
        or sum(line.line_total.amount_minor for line in order.lines),
        completed_at=_when(event.complete_time, envelope),
    )


def received_return(
    event: order_events.OrderReturnReceivedEvent, envelope: envelope_pb2.EventEnvelope
) -> commissions.ReceivedReturn:
    return commissions.ReceivedReturn(
        order_id=event.order_id,
        return_id=event.return_id or envelope.event_id,
        lines=tuple((line.line_id, line.quantity) for line in event.lines),
        refund_minor=event.refund_total.amount_minor,
        received_at=_when(event.receive_time, envelope),
    )


def subscriptions(config: DistributionConfig) -> Mapping[type[Message], Subscriber]:
    async def on_orders_completed(
        tx: PgTransaction, deliveries: Sequence[Delivery[order_events.OrderCompletedEvent]]
    ) -> None:
        await commissions.apply_orders_completed(
            PgCommissionWork(tx),
            [completed_order(d.event, d.envelope) for d in deliveries],
            config,
        )

    async def on_returns_received(
        tx: PgTransaction, deliveries: Sequence[Delivery[order_events.OrderReturnReceivedEvent]]
    ) -> None:
        await commissions.apply_returns_received(
            PgCommissionWork(tx), [received_return(d.event, d.envelope) for d in deliveries]
        )

    return {
        order_events.OrderCompletedEvent: Bulk(on_orders_completed),
        order_events.OrderReturnReceivedEvent: Bulk(on_returns_received),
    }
