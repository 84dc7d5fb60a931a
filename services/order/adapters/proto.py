"""Translation between the order service's rows/domain values and its protobuf messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1.money_pb2 import Money
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc

from services.order.domain.order import Fulfilment, HistoryEntry, Order, OrderReturn, address_json
from services.order.domain.orders import Address, AisleHandover, Mode, NewLine, NewOrder, Payment
from services.order.domain.state_machine import FulfilmentStatus, Handover, OrderStatus

MODES = {
    pb.FULFILMENT_MODE_STORE_SALE: Mode.STORE_SALE,
    pb.FULFILMENT_MODE_EXPRESS_DELIVERY: Mode.EXPRESS_DELIVERY,
    pb.FULFILMENT_MODE_SAME_CITY_DELIVERY: Mode.SAME_CITY_DELIVERY,
    pb.FULFILMENT_MODE_STORE_PICKUP: Mode.STORE_PICKUP,
    pb.FULFILMENT_MODE_GUIDE_DELIVERY: Mode.GUIDE_DELIVERY,
    pb.FULFILMENT_MODE_ENDLESS_AISLE: Mode.ENDLESS_AISLE,
}
MODES_PB = {v: k for k, v in MODES.items()}
AISLE = {
    pb.ENDLESS_AISLE_HANDOVER_UNSPECIFIED: AisleHandover.NONE,
    pb.ENDLESS_AISLE_HANDOVER_DELIVERY: AisleHandover.DELIVERY,
    pb.ENDLESS_AISLE_HANDOVER_PICKUP_IN_SELLING_STORE: AisleHandover.PICKUP_IN_SELLING_STORE,
    pb.ENDLESS_AISLE_HANDOVER_GUIDE: AisleHandover.GUIDE,
}
AISLE_PB = {v: k for k, v in AISLE.items()}
PAYMENTS = {
    pb.PAYMENT_STATE_AWAITING_PAYMENT: Payment.AWAITING,
    pb.PAYMENT_STATE_PAID_ONLINE: Payment.PAID_ONLINE,
    pb.PAYMENT_STATE_PAID_AT_POS: Payment.PAID_AT_POS,
}
PAYMENTS_PB = {v: k for k, v in PAYMENTS.items()}
STATUSES_PB = {
    OrderStatus.CREATED: pb.ORDER_STATUS_CREATED,
    OrderStatus.RESERVING: pb.ORDER_STATUS_RESERVING,
    OrderStatus.RESERVED: pb.ORDER_STATUS_RESERVED,
    OrderStatus.PAID: pb.ORDER_STATUS_PAID,
    OrderStatus.ALLOCATED: pb.ORDER_STATUS_ALLOCATED,
    OrderStatus.SHIPPED: pb.ORDER_STATUS_SHIPPED,
    OrderStatus.COMPLETED: pb.ORDER_STATUS_COMPLETED,
    OrderStatus.UNFILLABLE: pb.ORDER_STATUS_UNFILLABLE,
    OrderStatus.CANCELLING: pb.ORDER_STATUS_CANCELLING,
    OrderStatus.CANCELLED: pb.ORDER_STATUS_CANCELLED,
}
STATUSES = {v: k for k, v in STATUSES_PB.items()}
FULFILMENT_STATUSES_PB = {
    FulfilmentStatus.PLANNED: pb.FULFILMENT_STATUS_UNSPECIFIED,
    FulfilmentStatus.PENDING: pb.FULFILMENT_STATUS_PENDING,
    FulfilmentStatus.TRANSFER_IN_TRANSIT: pb.FULFILMENT_STATUS_TRANSFER_IN_TRANSIT,
    FulfilmentStatus.SHIPPED: pb.FULFILMENT_STATUS_SHIPPED,
    FulfilmentStatus.READY_FOR_PICKUP: pb.FULFILMENT_STATUS_READY_FOR_PICKUP,
    FulfilmentStatus.DELIVERED: pb.FULFILMENT_STATUS_DELIVERED,
    FulfilmentStatus.PICKED_UP: pb.FULFILMENT_STATUS_PICKED_UP,
    FulfilmentStatus.CANCELLED: pb.FULFILMENT_STATUS_CANCELLED,
}
HANDOVERS_PB = {
    Handover.AT_COUNTER: pb.HANDOVER_KIND_AT_COUNTER,
    Handover.COURIER: pb.HANDOVER_KIND_COURIER,
    Handover.SAME_CITY_RIDER: pb.HANDOVER_KIND_SAME_CITY_RIDER,
    Handover.STORE_PICKUP: pb.HANDOVER_KIND_STORE_PICKUP,
    Handover.GUIDE: pb.HANDOVER_KIND_GUIDE,
}


def ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


def money(amount: int, currency: str) -> Money:
    return Money(currency_code=currency, amount_minor=amount)


def address_from_proto(request: svc.CaptureOrderRequest) -> Address | None:
    if not request.HasField("delivery_address"):
        return None
    a = request.delivery_address
    return Address(a.province, a.city, a.district, a.street, a.postal_code, a.latitude, a.longitude)


def address_to_proto(data: dict[str, Any] | None) -> pb.Address | None:
    if not data:
        return None
    return pb.Address(**data)


def new_order_from_proto(request: svc.CaptureOrderRequest) -> NewOrder:
    return NewOrder(
        channel_id=request.channel_id,
        channel_kind=str(request.channel_kind),
        channel_order_id=request.channel_order_id,
        member_id=request.member_id,
        guest_contact=request.guest_contact,
        mode=MODES.get(request.fulfilment_mode),
        aisle_handover=AISLE.get(request.endless_aisle_handover, AisleHandover.NONE),
        selling_store_id=request.selling_store_id,
        selling_guide_staff_id=request.selling_guide_staff_id,
        referring_guide_code=request.referring_guide_code,
        pickup_store_id=request.pickup_store_id,
        address=address_from_proto(request),
        lines=tuple(
            NewLine(
                sku_code=line.sku_code,
                quantity=line.quantity,
                unit_price_minor=line.unit_price.amount_minor,
                discount_minor=line.discount.amount_minor,
                currency=line.unit_price.currency_code,
                discount_currency=line.discount.currency_code,
            )
            for line in request.lines
        ),
        payment=PAYMENTS.get(request.payment_state),
        stock_channel=request.stock_channel or request.channel_id,
    )


def fulfilment_to_proto(f: Fulfilment) -> pb.FulfilmentOrder:
    return pb.FulfilmentOrder(
        fulfilment_id=f.fulfilment_id,
        order_id=f.order_id,
        location_id=f.location_id,
        status=FULFILMENT_STATUSES_PB[f.status],
        handover=HANDOVERS_PB[f.handover],
        items=[
            pb.FulfilmentItem(line_id=i["line_id"], sku_code=i["sku_code"], quantity=i["quantity"])
            for i in f.items
        ],
        address=address_to_proto(f.address),
        handover_store_id=f.handover_store_id,
        transfer_id=f.transfer_id,
        distance_meters=f.distance_meters,
        route_hint=f.route_hint,
        assignee=f.assignee,
        create_time=ts(f.created_at),
        update_time=ts(f.updated_at),
    )


def order_to_proto(
    order: Order, *, status: OrderStatus | None = None, with_fulfilments: bool = True
) -> pb.Order:
    """The order as the API shows it (``status``: as it was when an event happened)."""
    currency = order.currency
    return pb.Order(
        order_id=order.order_id,
        channel_id=order.channel_id,
        channel_kind=order.channel_kind,  # type: ignore[arg-type]
        channel_order_id=order.channel_order_id,
        member_id=order.member_id,
        fulfilment_mode=MODES_PB[order.mode],
        endless_aisle_handover=AISLE_PB[order.aisle_handover],
        selling_store_id=order.selling_store_id,
        selling_guide_staff_id=order.selling_guide_staff_id,
        referring_guide_code=order.referring_guide_code,
        pickup_store_id=order.pickup_store_id,
        delivery_address=address_to_proto(address_json(order.address)),
        lines=[
            pb.OrderLine(
                line_id=line.line_id,
                sku_code=line.sku_code,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor, currency),
                discount=money(line.discount_minor, currency),
                line_total=money(line.line_total_minor, currency),
                category_code=line.category_code,
            )
            for line in order.lines
        ],
        fulfilments=[
            pb.FulfilmentSummary(
                fulfilment_id=f.fulfilment_id,
                location_id=f.location_id,
                line_ids=[i["line_id"] for i in f.items],
            )
            for f in order.fulfilments
            if f.status is not FulfilmentStatus.PLANNED
        ]
        if with_fulfilments
        else [],
        total=money(order.total_minor, currency),
        create_time=ts(order.created_at),
        status=STATUSES_PB[status or order.status],
        payment_state=PAYMENTS_PB[order.payment],
        guest_contact=order.guest_contact,
        stock_channel=order.stock_channel,
        cancel_reason=order.cancel_reason,
        update_time=ts(order.updated_at),
    )


def routing_to_proto(data: dict[str, Any] | None, attempts: int) -> pb.RoutingDecision:
    if not data:
        return pb.RoutingDecision(attempt=attempts)
    decide_time = Timestamp()
    decide_time.FromJsonString(data["decide_time"])
    return pb.RoutingDecision(
        rules_version=data["rules_version"],
        routed=data["routed"],
        failure_reason=data["failure_reason"],
        candidates=[
            pb.RoutingCandidate(
                location_id=c["location_id"],
                chosen=c["chosen"],
                reason=c["reason"],
                distance_meters=c["distance_meters"] or 0.0,
                same_city=c["same_city"],
                line_ids=c["line_ids"],
                via_transfer=c["via_transfer"],
            )
            for c in data["candidates"]
        ],
        decide_time=decide_time,
        attempt=attempts,
    )


def history_to_proto(h: HistoryEntry) -> pb.OrderHistoryEntry:
    return pb.OrderHistoryEntry(
        from_status=STATUSES_PB[h.from_status],
        to_status=STATUSES_PB[h.to_status],
        note=h.note,
        time=ts(h.at),
    )


def return_to_proto(r: OrderReturn) -> pb.OrderReturn:
    currency = r.currency
    return pb.OrderReturn(
        return_id=r.return_id,
        order_id=r.order_id,
        receiving_location_id=r.receiving_location_id,
        by_post=r.by_post,
        lines=[
            pb.ReturnedLine(
                line_id=line["line_id"],
                sku_code=line["sku_code"],
                quantity=line["quantity"],
                refund=money(line["refund_minor"], currency),
            )
            for line in r.lines
        ],
        refund_total=money(r.refund_total_minor, currency),
        receive_time=ts(r.received_at),
    )


def rules_to_proto(row: dict[str, Any]) -> pb.RoutingRules:
    body = row["body"]
    return pb.RoutingRules(
        channel_id=row["channel_id"],
        version=row["version"],
        same_city_first=body["same_city_first"],
        location_priority=body["location_priority"],
        excluded_location_ids=body["excluded_location_ids"],
        payment_timeout_seconds=body["payment_timeout_seconds"],
        unfillable_timeout_seconds=body["unfillable_timeout_seconds"],
        distance_tolerance_meters=body["distance_tolerance_meters"],
        create_time=ts(row["created_at"]),
    )
