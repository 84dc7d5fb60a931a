"""omni.order.v1.OrderService: translate, call a use case, translate back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from omni.order.v1 import order_service_pb2_grpc as svc_grpc

from libs.errors import InvalidArgument, NotFound
from libs.idempotency import run_idempotent, validate_request_id
from libs.pagination import decode_token, encode_token, page_size
from libs.proto_input import field_time
from libs.unit_of_work import UnitOfWork
from services.order.adapters import proto
from services.order.adapters.repository import OrderRepository
from services.order.domain import orders as order_rules
from services.order.domain.state_machine import Step
from services.order.service_layer import orders, workflow
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


class OrderServicer(svc_grpc.OrderServiceServicer):
    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx

    async def _order(self, order_id: str, *, full: bool = True) -> svc.GetOrderResponse:
        async with self.ctx.uow() as uow:
            repo = OrderRepository(uow.session)
            row = await repo.get(order_id)
            if row is None:
                raise NotFound(f"order {order_id} not found")
            lines = await repo.lines(order_id)
            fulfilments = await repo.fulfilments_of(order_id)
            return svc.GetOrderResponse(
                order=proto.order_to_proto(row.data, lines, fulfilments),
                routing=proto.routing_to_proto(row["routing"], row["routing_attempts"]),
                fulfilment_orders=[
                    proto.fulfilment_to_proto(f) for f in fulfilments if f["status"] != "planned"
                ],
                history=[proto.history_to_proto(h) for h in await repo.history(order_id)]
                if full
                else [],
                returns=[proto.return_to_proto(r) for r in await repo.returns_of(order_id)]
                if full
                else [],
            )

    async def CaptureOrder(
        self, request: svc.CaptureOrderRequest, context: Context
    ) -> svc.CaptureOrderResponse:
        validate_request_id(request.request_id)
        new = proto.new_order_from_proto(request)
        order_rules.validate(new)
        async with self.ctx.uow() as uow:
            known = await orders.existing_capture(OrderRepository(uow.session), new)
        inserted = False
        if known is None:
            categories = await orders.check_references(self.ctx, new)

            async def handle(uow: UnitOfWork) -> svc.CaptureOrderResponse:
                nonlocal inserted
                order_id, inserted = await orders.insert_order(uow, new, categories)
                return svc.CaptureOrderResponse(order=pb.Order(order_id=order_id))

            created = await run_idempotent(
                self.ctx.uow, "CaptureOrder", request, svc.CaptureOrderResponse, handle
            )
            known = created.order.order_id
        if not inserted:
            await orders.resent_payment(self.ctx, known, new.payment)
        await workflow.drive(self.ctx, known)
        got = await self._order(known, full=False)
        return svc.CaptureOrderResponse(order=got.order, routing=got.routing)

    async def PayOrder(
        self, request: svc.PayOrderRequest, context: Context
    ) -> svc.PayOrderResponse:
        async def handle(uow: UnitOfWork) -> svc.PayOrderResponse:
            await orders.pay(uow, request.order_id, proto.PAYMENTS.get(request.payment_state))
            return svc.PayOrderResponse()

        await run_idempotent(self.ctx.uow, "PayOrder", request, svc.PayOrderResponse, handle)
        await workflow.drive(self.ctx, request.order_id)
        return svc.PayOrderResponse(order=(await self._order(request.order_id, full=False)).order)

    async def CancelOrder(
        self, request: svc.CancelOrderRequest, context: Context
    ) -> svc.CancelOrderResponse:
        async def handle(uow: UnitOfWork) -> svc.CancelOrderResponse:
            await orders.request_cancel(uow, request.order_id, request.reason or "customer")
            return svc.CancelOrderResponse()

        await run_idempotent(self.ctx.uow, "CancelOrder", request, svc.CancelOrderResponse, handle)
        await workflow.drive(self.ctx, request.order_id)
        return svc.CancelOrderResponse(
            order=(await self._order(request.order_id, full=False)).order
        )

    async def _step(
        self, method: str, request: Any, step: Step, assignee: str = ""
    ) -> pb.FulfilmentOrder:
        async def handle(uow: UnitOfWork) -> svc.ShipFulfilmentResponse:
            result = await orders.fulfilment_step(
                self.ctx, uow, request.fulfilment_id, step, assignee
            )
            return svc.ShipFulfilmentResponse(
                fulfilment_order=proto.fulfilment_to_proto(result.fulfilment)
            )

        done = await run_idempotent(
            self.ctx.uow, method, request, svc.ShipFulfilmentResponse, handle
        )
        return done.fulfilment_order

    async def ShipFulfilment(
        self, request: svc.ShipFulfilmentRequest, context: Context
    ) -> svc.ShipFulfilmentResponse:
        f = await self._step("ShipFulfilment", request, Step.SHIP, request.assignee)
        return svc.ShipFulfilmentResponse(fulfilment_order=f)

    async def MarkReadyForPickup(
        self, request: svc.MarkReadyForPickupRequest, context: Context
    ) -> svc.MarkReadyForPickupResponse:
        f = await self._step("MarkReadyForPickup", request, Step.READY)
        return svc.MarkReadyForPickupResponse(fulfilment_order=f)

    async def ConfirmDelivery(
        self, request: svc.ConfirmDeliveryRequest, context: Context
    ) -> svc.ConfirmDeliveryResponse:
        f = await self._step("ConfirmDelivery", request, Step.DELIVER)
        return svc.ConfirmDeliveryResponse(
            fulfilment_order=f, order=(await self._order(f.order_id)).order
        )

    async def ReceiveReturn(
        self, request: svc.ReceiveReturnRequest, context: Context
    ) -> svc.ReceiveReturnResponse:
        record: dict[str, Any] = {}

        async def handle(uow: UnitOfWork) -> svc.ReceiveReturnResponse:
            record.update(
                await orders.receive_return(
                    self.ctx,
                    uow,
                    request.order_id,
                    request.receiving_location_id,
                    request.by_post,
                    [
                        orders.ReturnLine(
                            line.line_id, line.quantity, CONDITIONS.get(line.condition)
                        )
                        for line in request.lines
                    ],
                )
            )
            return svc.ReceiveReturnResponse(order_return=proto.return_to_proto(record))

        done = await run_idempotent(
            self.ctx.uow, "ReceiveReturn", request, svc.ReceiveReturnResponse, handle
        )
        if record:
            await orders.finish_restock(self.ctx, record)
        return done

    async def GetOrder(
        self, request: svc.GetOrderRequest, context: Context
    ) -> svc.GetOrderResponse:
        return await self._order(request.order_id)

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
        async with self.ctx.uow() as uow:
            repo = OrderRepository(uow.session)
            rows = await repo.list_orders(
                channel_id=request.channel_id,
                store_id=request.store_id,
                guide_staff_id=request.guide_staff_id,
                member_id=request.member_id,
                status=status,
                created_from=field_time(request, "create_time_from"),
                created_to=field_time(request, "create_time_to"),
                after=after,
                limit=size + 1,
            )
            page = rows[:size]
            lines = await repo.lines_for([r.order_id for r in page])
            out = [proto.order_to_proto(r.data, lines[r.order_id], []) for r in page]
        token = (
            encode_token([page[-1]["created_at"].isoformat(), page[-1].order_id])
            if len(rows) > size
            else ""
        )
        return svc.ListOrdersResponse(orders=out, next_page_token=token)

    async def SetRoutingRules(
        self, request: svc.SetRoutingRulesRequest, context: Context
    ) -> svc.SetRoutingRulesResponse:
        async def handle(uow: UnitOfWork) -> svc.SetRoutingRulesResponse:
            row = await orders.set_rules(uow, request.rules)
            return svc.SetRoutingRulesResponse(rules=proto.rules_to_proto(row))

        return await run_idempotent(
            self.ctx.uow, "SetRoutingRules", request, svc.SetRoutingRulesResponse, handle
        )

    async def GetRoutingRules(
        self, request: svc.GetRoutingRulesRequest, context: Context
    ) -> svc.GetRoutingRulesResponse:
        if not request.channel_id:
            raise InvalidArgument.field("channel_id", "is required")
        async with self.ctx.uow() as uow:
            row = await OrderRepository(uow.session).rules(request.channel_id, request.version)
        if row is None:
            raise NotFound(
                f"no routing rules for channel {request.channel_id}"
                + (f" version {request.version}" if request.version else "")
            )
        return svc.GetRoutingRulesResponse(rules=proto.rules_to_proto(row))
