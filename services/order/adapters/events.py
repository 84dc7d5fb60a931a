"""The aggregate's recorded events as the protobuf messages of the order topic
(protos/omni/order/v1/events.proto)."""

from __future__ import annotations

from google.protobuf.message import Message
from omni.order.v1 import events_pb2 as ev
from omni.order.v1 import order_pb2 as pb

from services.order.adapters import proto
from services.order.domain.order import EventKind, Order, OrderEvent

# Events of an order before allocation show no fulfilment orders (none exist yet).
_BEFORE_ALLOCATION = frozenset(
    {EventKind.CREATED, EventKind.RESERVED, EventKind.PAID, EventKind.UNFILLABLE}
)


def message(order: Order, event: OrderEvent) -> Message:
    snapshot = proto.order_to_proto(
        order, status=event.status, with_fulfilments=event.kind not in _BEFORE_ALLOCATION
    )
    at = proto.ts(event.at)
    kind = event.kind
    if kind is EventKind.CREATED:
        return ev.OrderCreatedEvent(order=snapshot)
    if kind is EventKind.RESERVED:
        return ev.OrderReservedEvent(order=snapshot)
    if kind is EventKind.PAID:
        return ev.OrderPaidEvent(order=snapshot, pay_time=at)
    if kind is EventKind.ALLOCATED:
        return ev.OrderAllocatedEvent(
            order=snapshot,
            fulfilment_orders=[proto.fulfilment_to_proto(f) for f in order.fulfilments],
        )
    if kind is EventKind.UNFILLABLE:
        return ev.OrderUnfillableEvent(order=snapshot, reason=event.reason)
    if kind is EventKind.COMPLETED:
        return ev.OrderCompletedEvent(order=snapshot, complete_time=at)
    if kind is EventKind.CANCELLED:
        return ev.OrderCancelledEvent(order=snapshot, reason=event.reason, cancel_time=at)
    if kind is EventKind.RETURN_RECEIVED:
        record = next(r for r in order.returns if r.return_id == event.return_id)
        return ev.OrderReturnReceivedEvent(
            return_id=record.return_id,
            order_id=order.order_id,
            member_id=order.member_id,
            receiving_location_id=record.receiving_location_id,
            lines=[
                pb.ReturnedLine(
                    line_id=r["line_id"],
                    sku_code=r["sku_code"],
                    quantity=r["quantity"],
                    refund=proto.money(r["refund_minor"], order.currency),
                )
                for r in record.lines
            ],
            refund_total=proto.money(record.refund_total_minor, order.currency),
            receive_time=at,
        )
    fulfilment = proto.fulfilment_to_proto(order.fulfilment(event.fulfilment_id))
    if kind is EventKind.FULFILMENT_SHIPPED:
        return ev.FulfilmentShippedEvent(fulfilment_order=fulfilment)
    if kind is EventKind.FULFILMENT_READY:
        return ev.FulfilmentReadyForPickupEvent(fulfilment_order=fulfilment)
    return ev.FulfilmentDeliveredEvent(fulfilment_order=fulfilment)
