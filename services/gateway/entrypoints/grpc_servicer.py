"""omni.gateway.v1.GatewayService: translate, call a use case, translate back."""

from __future__ import annotations

from typing import Any

import grpc
from omni.gateway.v1 import gateway_pb2
from omni.gateway.v1 import gateway_service_pb2 as pb
from omni.gateway.v1 import gateway_service_pb2_grpc as pb_grpc

from libs.errors import InvalidArgument
from libs.idempotency import run_idempotent
from libs.pagination import decode_token, encode_token, page_size
from libs.unit_of_work import UnitOfWork
from services.gateway.adapters.proto import (
    CONNECTOR_FROM_PROTO,
    KIND_FROM_PROTO,
    OUTCOME_FROM_PROTO,
    OWNER_FROM_PROTO,
    STATUS_FROM_PROTO,
    channel_to_proto,
    credential_to_proto,
    order_to_proto,
    payload_to_proto,
    push_to_proto,
)
from services.gateway.connectors import distributor
from services.gateway.domain.channels import ChannelConfig
from services.gateway.entrypoints.errors import dumps
from services.gateway.entrypoints.grpc_inbound import submit_channel_order
from services.gateway.entrypoints.http_app import replay
from services.gateway.service_layer import channels, inbound, outbound
from services.gateway.service_layer.ingest import Gateway

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PAGE = 500


def _after_text(token: str) -> str:
    position = decode_token(token, 1)
    return str(position[0]) if position else ""


def _after_int(token: str) -> int:
    position = decode_token(token, 1)
    if position is None:
        return 0
    if not isinstance(position[0], int):
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    return position[0]


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.uow = gw.uow_factory

    async def SubmitChannelOrder(
        self, request: pb.SubmitChannelOrderRequest, context: Context
    ) -> pb.SubmitChannelOrderResponse:
        # Idempotent by the channel order id (accepted once), like the HTTP routes; each
        # retry is signed anew (the nonce is single use).
        return await submit_channel_order(self.gw, request, context)

    async def CreateChannel(
        self, request: pb.CreateChannelRequest, context: Context
    ) -> pb.CreateChannelResponse:
        c = request.channel
        config = ChannelConfig(
            c.channel_id.strip(),
            KIND_FROM_PROTO.get(c.kind, ""),
            CONNECTOR_FROM_PROTO.get(c.connector, ""),
            STATUS_FROM_PROTO.get(c.status, "active"),
            c.rate_limit_per_second,
            c.rate_limit_burst,
            c.push_endpoint.strip(),
            c.stock_channel.strip(),
        )

        async def handle(uow: UnitOfWork) -> pb.CreateChannelResponse:
            return pb.CreateChannelResponse(
                channel=channel_to_proto(await channels.create_channel(uow, config))
            )

        return await run_idempotent(
            self.uow, "CreateChannel", request, pb.CreateChannelResponse, handle
        )

    async def GetChannel(
        self, request: pb.GetChannelRequest, context: Context
    ) -> pb.GetChannelResponse:
        async with self.gw.db.session() as session:
            found = await channels.get_channel(session, request.channel_id)
        return pb.GetChannelResponse(channel=channel_to_proto(found))

    async def ListChannels(
        self, request: pb.ListChannelsRequest, context: Context
    ) -> pb.ListChannelsResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE)
        async with self.gw.db.session() as session:
            found = await channels.list_channels(session, _after_text(request.page_token), size + 1)
        page = found[:size]
        return pb.ListChannelsResponse(
            channels=[channel_to_proto(c) for c in page],
            next_page_token=encode_token([page[-1].config.channel_id]) if len(found) > size else "",
        )

    async def UpdateChannel(
        self, request: pb.UpdateChannelRequest, context: Context
    ) -> pb.UpdateChannelResponse:
        async def handle(uow: UnitOfWork) -> pb.UpdateChannelResponse:
            updated = await channels.update_channel(
                uow,
                request.channel_id,
                STATUS_FROM_PROTO.get(request.status, ""),
                request.rate_limit_per_second,
                request.rate_limit_burst,
                request.push_endpoint.strip() or None,
                self.gw.directory,
            )
            return pb.UpdateChannelResponse(channel=channel_to_proto(updated))

        return await run_idempotent(
            self.uow, "UpdateChannel", request, pb.UpdateChannelResponse, handle
        )

    async def IssueCredential(
        self, request: pb.IssueCredentialRequest, context: Context
    ) -> pb.IssueCredentialResponse:
        # The secret is generated inside and so is part of the stored response: a retry of
        # the same request id gets the same key back, as it must (the first answer may have
        # been lost in transit).
        async def handle(uow: UnitOfWork) -> pb.IssueCredentialResponse:
            cred, secret = await channels.issue_credential(
                uow,
                OWNER_FROM_PROTO.get(request.owner_kind, ""),
                request.owner_id.strip(),
                request.channel_id.strip(),
                list(request.scopes),
                request.rate_limit_per_second,
                request.rate_limit_burst,
            )
            return pb.IssueCredentialResponse(credential=credential_to_proto(cred), secret=secret)

        return await run_idempotent(
            self.uow, "IssueCredential", request, pb.IssueCredentialResponse, handle
        )

    async def RevokeCredential(
        self, request: pb.RevokeCredentialRequest, context: Context
    ) -> pb.RevokeCredentialResponse:
        async def handle(uow: UnitOfWork) -> pb.RevokeCredentialResponse:
            cred = await channels.revoke_credential(uow, request.key_id, self.gw.directory)
            return pb.RevokeCredentialResponse(credential=credential_to_proto(cred))

        return await run_idempotent(
            self.uow, "RevokeCredential", request, pb.RevokeCredentialResponse, handle
        )

    async def ListCredentials(
        self, request: pb.ListCredentialsRequest, context: Context
    ) -> pb.ListCredentialsResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE)
        async with self.gw.db.session() as session:
            found = await channels.list_credentials(
                session, request.channel_id, _after_text(request.page_token), size + 1
            )
        page = found[:size]
        return pb.ListCredentialsResponse(
            credentials=[credential_to_proto(c) for c in page],
            next_page_token=encode_token([page[-1].key_id]) if len(found) > size else "",
        )

    async def ListPayloads(
        self, request: pb.ListPayloadsRequest, context: Context
    ) -> pb.ListPayloadsResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE)
        outcome = OUTCOME_FROM_PROTO.get(request.outcome, "")
        async with self.gw.db.session() as session:
            found = await inbound.list_payloads(
                session, request.channel_id, outcome, _after_int(request.page_token), size + 1
            )
        page = found[:size]
        return pb.ListPayloadsResponse(
            payloads=[payload_to_proto(p) for p in page],
            next_page_token=encode_token([int(page[-1].payload_id)]) if len(found) > size else "",
        )

    async def ReplayPayload(
        self, request: pb.ReplayPayloadRequest, context: Context
    ) -> pb.ReplayPayloadResponse:
        # Idempotent by nature (an order is accepted once per channel order id) and by
        # request id (a retry returns the first replay's answer).
        async def handle(uow: UnitOfWork) -> pb.ReplayPayloadResponse:
            answer = await replay(self.gw, request.payload_id)
            return pb.ReplayPayloadResponse(http_status=answer.status, body=dumps(answer.body))

        return await run_idempotent(
            self.uow, "ReplayPayload", request, pb.ReplayPayloadResponse, handle
        )

    async def GetChannelOrder(
        self, request: pb.GetChannelOrderRequest, context: Context
    ) -> pb.GetChannelOrderResponse:
        async with self.gw.db.session() as session:
            found = await inbound.find_order(
                session,
                request.channel_id,
                distributor.partner_order_id(request.partner_id, request.channel_order_id),
            )
        return pb.GetChannelOrderResponse(order=order_to_proto(found))

    async def ListDeadPushes(
        self, request: pb.ListDeadPushesRequest, context: Context
    ) -> pb.ListDeadPushesResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE)
        async with self.gw.db.session() as session:
            found = await outbound.list_dead(
                session, request.channel_id, _after_int(request.page_token), size + 1
            )
        page = found[:size]
        return pb.ListDeadPushesResponse(
            pushes=[push_to_proto(p) for p in page],
            next_page_token=encode_token([int(page[-1].push_id)]) if len(found) > size else "",
        )

    async def RetryPush(
        self, request: pb.RetryPushRequest, context: Context
    ) -> pb.RetryPushResponse:
        async def handle(uow: UnitOfWork) -> pb.RetryPushResponse:
            return pb.RetryPushResponse(
                push=push_to_proto(await outbound.retry_push(uow.session, request.push_id))
            )

        return await run_idempotent(self.uow, "RetryPush", request, pb.RetryPushResponse, handle)

    async def ReconcileStock(
        self, request: pb.ReconcileStockRequest, context: Context
    ) -> pb.ReconcileStockResponse:
        reported: list[tuple[str, int]] = []
        seen: set[str] = set()
        violations = InvalidArgument
        if len(request.channel_stock) > 100:
            raise violations.field("channel_stock", "at most 100 SKUs per call")
        for index, item in enumerate(request.channel_stock):
            if not item.sku_code:
                raise violations.field(f"channel_stock[{index}].sku_code", "is required")
            if item.sku_code in seen:
                raise violations.field(f"channel_stock[{index}].sku_code", "is listed twice")
            if item.quantity < 0:
                raise violations.field(f"channel_stock[{index}].quantity", "must not be negative")
            seen.add(item.sku_code)
            reported.append((item.sku_code, item.quantity))

        async def handle(uow: UnitOfWork) -> pb.ReconcileStockResponse:
            result = await outbound.reconcile_stock(
                uow.session, self.gw.peers, request.channel_id, reported
            )
            return pb.ReconcileStockResponse(
                repaired=[gateway_pb2.SkuStock(sku_code=s, quantity=q) for s, q in result.repaired],
                matched=result.matched,
            )

        return await run_idempotent(
            self.uow, "ReconcileStock", request, pb.ReconcileStockResponse, handle
        )
