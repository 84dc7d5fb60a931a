"""omni.order.v1.OrderService: translate, call a use case, translate back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.errors import InvalidArgument
from libs.pagination import decode_token, encode_token, page_size
from libs.proto_input import field_time
from services.order.adapters import proto
from services.order.adapters.order_store import OrderFilter
from services.order.domain.order import Order
from services.order.domain.state_machine import Step
from services.order.service_layer import orders
from services.order.service_layer.context import OrderContext

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PAGE_SIZE = 500
CONDITIONS = {
    pb.RETURN_CONDITION_RESALEABLE: True,
    pb.RETURN_CONDITION_DAMAGED: False,
}


def _order_position(token: str) -> tuple[datetime, str] | None:
    """Orders page by (created_at, order_id)."""
    position = decode_token(token, 2, (str, str))
    if position is None:
        return None
    try:
        return datetime.fromisoformat(str(position[0])), str(position[1])
    except ValueError as exc:
        raise InvalidArgument.field("page_token", "is not a token this service issued") from exc


def _detail(order: Order, *, full: bool) -> svc.GetOrderResponse:
    return svc.GetOrderResponse(
        order=proto.order_to_proto(order),
        routing=proto.routing_to_proto(order.routing, order.routing_attempts),
        fulfilment_orders=[
            proto.fulfilment_to_proto(f) for f in order.fulfilments if f.status.value != "planned"
        ],
        history=[proto.history_to_proto(h) for h in order.history] if full else [],
        returns=[proto.return_to_proto(r) for r in order.returns] if full else [],
    )


class OrderServicer(svc_grpc.OrderServiceServicer):
    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx

    async def CaptureOrder(
        self, request: svc.CaptureOrderRequest, context: Context
    ) -> svc.CaptureOrderResponse:
        order = await orders.capture(self.ctx, request)
        return svc.CaptureOrderResponse(
            order=proto.order_to_proto(order),
            routing=proto.routing_to_proto(order.routing, order.routing_attempts),
        )

    async def PayOrder(
        self, request: svc.PayOrderRequest, context: Context
    ) -> svc.PayOrderResponse:
        order = await orders.pay(self.ctx, request)
        return svc.PayOrderResponse(order=proto.order_to_proto(order))

    async def CancelOrder(
        self, request: svc.CancelOrderRequest, context: Context
    ) -> svc.CancelOrderResponse:
        order = await orders.cancel(self.ctx, request)
        return svc.CancelOrderResponse(order=proto.order_to_proto(order))

    async def ShipFulfilment(
        self, request: svc.ShipFulfilmentRequest, context: Context
    ) -> svc.ShipFulfilmentResponse:
        f, _ = await orders.fulfilment_step(
            self.ctx, "ShipFulfilment", request, Step.SHIP, request.assignee
        )
        return svc.ShipFulfilmentResponse(fulfilment_order=f)

    async def MarkReadyForPickup(
        self, request: svc.MarkReadyForPickupRequest, context: Context
    ) -> svc.MarkReadyForPickupResponse:
        f, _ = await orders.fulfilment_step(self.ctx, "MarkReadyForPickup", request, Step.READY)
        return svc.MarkReadyForPickupResponse(fulfilment_order=f)

    async def ConfirmDelivery(
        self, request: svc.ConfirmDeliveryRequest, context: Context
    ) -> svc.ConfirmDeliveryResponse:
        f, order_id = await orders.fulfilment_step(
            self.ctx, "ConfirmDelivery", request, Step.DELIVER
        )
        order = await orders.get_order(self.ctx, order_id)
        return svc.ConfirmDeliveryResponse(fulfilment_order=f, order=proto.order_to_proto(order))

    async def ReceiveReturn(
        self, request: svc.ReceiveReturnRequest, context: Context
    ) -> svc.ReceiveReturnResponse:
        lines = [
            orders.ReturnLine(line.line_id, line.quantity, CONDITIONS.get(line.condition))
            for line in request.lines
        ]
        return await orders.receive_return(self.ctx, request, lines)

    async def GetOrder(
        self, request: svc.GetOrderRequest, context: Context
    ) -> svc.GetOrderResponse:
        return _detail(await orders.get_order(self.ctx, request.order_id, details=True), full=True)

    async def ListOrders(
        self, request: svc.ListOrdersRequest, context: Context
    ) -> svc.ListOrdersResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE_SIZE)
        after = _order_position(request.page_token)
        status = None
        if request.status:
            status = proto.STATUSES.get(request.status)
            if status is None:
                raise InvalidArgument.field("status", "is not a known order status")
        found = await orders.list_orders(
            self.ctx,
            OrderFilter(
                channel_id=request.channel_id,
                store_id=request.store_id,
                guide_staff_id=request.guide_staff_id,
                member_id=request.member_id,
                status=status,
                created_from=field_time(request, "create_time_from"),
                created_to=field_time(request, "create_time_to"),
                after=after,
            ),
            size + 1,
        )
        page = found[:size]
        token = (
            encode_token([page[-1].created_at.isoformat(), page[-1].order_id])
            if len(found) > size
            else ""
        )
        return svc.ListOrdersResponse(
            orders=[proto.order_to_proto(o, with_fulfilments=False) for o in page],
            next_page_token=token,
        )

    async def SetRoutingRules(
        self, request: svc.SetRoutingRulesRequest, context: Context
    ) -> svc.SetRoutingRulesResponse:
        return await orders.set_rules(self.ctx, request)

    async def GetRoutingRules(
        self, request: svc.GetRoutingRulesRequest, context: Context
    ) -> svc.GetRoutingRulesResponse:
        row = await orders.get_rules(self.ctx, request.channel_id, request.version)
        return svc.GetRoutingRulesResponse(rules=proto.rules_to_proto(row))
