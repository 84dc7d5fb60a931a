"""SubmitChannelOrder: a channel order over gRPC, through the same path as the HTTP routes —
raw payload stored first, the signature checked (Omni scheme, in the metadata), the rate
limit charged, the connector's model and translation, accepted once per channel order id —
and the refusals as gRPC status codes instead of HTTP ones."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from omni.gateway.v1 import gateway_service_pb2 as pb
from pydantic import ValidationError

from libs.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    Validator,
)
from libs.grpc_errors import field_violations
from services.gateway.adapters.proto import CONNECTOR_FROM_PROTO
from services.gateway.domain.access import require_channel
from services.gateway.domain.channels import ID_PATTERN
from services.gateway.domain.signatures import SignatureError
from services.gateway.entrypoints import errors
from services.gateway.entrypoints.input_guard import check_json
from services.gateway.service_layer import inbound, ingest, security
from services.gateway.service_layer.admission import Busy
from services.gateway.service_layer.ingest import Answer, Gateway

Context = grpc.aio.ServicerContext[Any, Any]

METHOD = "GRPC"
RPC_PATH = "/omni.gateway.v1.GatewayService/SubmitChannelOrder"
MAX_PAYLOAD_BYTES = 1_000_000

# The order routes of each connector; the first is the default.
ORDER_ROUTES: dict[str, tuple[str, ...]] = {
    "pos": ("pos.sales", "pos.endless-aisle-orders"),
    "web_mall": ("mall.orders",),
    "tmall": ("tmall.trades",),
    "jd": ("jd.orders",),
    "distributor_shop": ("distributor.orders",),
    "local_life": ("local-life.vouchers",),
}


def signed_path(channel_id: str, route: str) -> str:
    """What the signature covers as PATH (METHOD is "GRPC", BODY the payload bytes)."""
    return f"{RPC_PATH}/{channel_id}/{route}"


@dataclass(frozen=True)
class Submission:
    channel_id: str
    connector: str
    route: str
    payload: bytes


def validate(request: pb.SubmitChannelOrderRequest) -> Submission:
    v = Validator()
    v.check(bool(ID_PATTERN.match(request.channel_id)), "channel_id", "is not a channel id")
    connector = CONNECTOR_FROM_PROTO.get(request.connector, "")
    v.check(bool(connector), "connector", "is required")
    routes = ORDER_ROUTES.get(connector, ())
    route = request.route or (routes[0] if routes else "")
    if connector:
        v.check(route in routes, "route", f"must be one of {', '.join(routes)}")
    v.check(bool(request.payload), "payload", "is required")
    v.check(len(request.payload) <= MAX_PAYLOAD_BYTES, "payload", "is over 1 MB")
    v.raise_if_any()
    return Submission(request.channel_id, connector, route, request.payload)


def _in_payload(found: list[tuple[str, str]]) -> InvalidArgument:
    """Violations of the payload's JSON named inside it: payload.items[0].quantity."""
    return InvalidArgument(
        [FieldViolation("payload" if f == "body" else f"payload.{f}", d) for f, d in found]
        or [FieldViolation("payload", "is invalid")]
    )


async def _run(
    gw: Gateway, sub: Submission, metadata: Mapping[str, str], receipt: inbound.Receipt
) -> Answer:
    """Authenticate, translate and accept; the same handler as the HTTP route."""
    found = check_json(sub.payload)
    if found:
        raise _in_payload(found)
    auth = await security.authenticate(
        gw.directory,
        gw.limiter,
        style="omni",
        headers=metadata,
        query={},
        method=METHOD,
        path=signed_path(sub.channel_id, sub.route),
        body=sub.payload,
        now=time.time(),
    )
    receipt.auth = auth
    require_channel(auth.caller, sub.channel_id)
    channel = auth.channel
    if channel.config.connector != sub.connector:
        raise InvalidArgument.field(
            "connector", f"channel {sub.channel_id} uses the {channel.config.connector} connector"
        )
    route = ingest.ROUTES[sub.route]
    try:
        body = route.model.model_validate_json(sub.payload)
    except ValidationError as exc:
        raise _in_payload(errors.validation_violations(exc.errors())) from exc
    return await ingest.handle(gw, route, receipt, body)


def _as_grpc(exc: Exception) -> tuple[grpc.StatusCode, str] | DomainError | None:
    """A refusal as what the gRPC server answers: a domain error (with its details) or a
    status code; None for a bug."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, SignatureError):
        return grpc.StatusCode.UNAUTHENTICATED, exc.reason
    if isinstance(exc, security.RateLimited):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, (
            f"rate limit exceeded; retry after {exc.retry_after}s"
        )
    if isinstance(exc, security.ChannelSuspended):
        return PermissionDenied(str(exc))
    if isinstance(exc, Busy):
        return Unavailable(str(exc))
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code()
        details = exc.details() or ""
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            violations = field_violations(exc)
            if not violations:
                return InvalidArgument.field("payload", details)
            return InvalidArgument([FieldViolation(f, d) for f, d in violations])
        peer: dict[grpc.StatusCode, type[DomainError]] = {
            grpc.StatusCode.NOT_FOUND: NotFound,
            grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
            grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
            grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
        }
        if code in peer:
            return peer[code](details)
        if code == grpc.StatusCode.ABORTED:
            return code, details
        # A platform service failed, is unreachable or too slow: the adapter should retry.
        return Unavailable(f"a platform service failed: {code.name}")
    return None


async def submit_channel_order(
    gw: Gateway, request: pb.SubmitChannelOrderRequest, context: Context
) -> pb.SubmitChannelOrderResponse:
    """Stored with its answer (even if the request is then refused), like every HTTP
    payload: by the statement that opens it, or with the refusal."""
    metadata = {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
    if len(request.payload) > MAX_PAYLOAD_BYTES:
        raise InvalidArgument.field("payload", "is over 1 MB")
    channel_id = request.channel_id if ID_PATTERN.match(request.channel_id) else ""
    default = ORDER_ROUTES.get(CONNECTOR_FROM_PROTO.get(request.connector, ""), ("unknown",))
    route = request.route or default[0]
    if route not in ingest.ROUTES:
        route = "unknown"
    receipt = inbound.Receipt(
        inbound.RawPayload(
            channel_id,
            route,
            METHOD,
            signed_path(channel_id, route),
            inbound.redact_headers(metadata),
            request.payload,
        )
    )
    status, error = 500, ""
    try:
        sub = validate(request)
        route = sub.route
        answer = await _run(gw, sub, metadata, receipt)
        status = answer.status
        return pb.SubmitChannelOrderResponse(
            order_id=answer.body["order_id"],
            channel_order_id=answer.body["channel_order_id"],
            status=answer.body["status"],
            duplicate=receipt.duplicate,
            payload_id=receipt.payload_id or 0,
        )
    except Exception as exc:
        known = errors.from_exception(exc)
        if known is not None:
            status, error = known[0], errors.dumps(known[1])
        translated = _as_grpc(exc)
        if translated is None:
            raise
        if isinstance(translated, DomainError):
            raise translated from exc
        await context.abort(*translated)
        raise
    finally:
        stored = receipt.payload_id is not None
        try:
            await inbound.settle(gw.pg, receipt, status, error)
        except Exception as exc:
            if not stored:
                # Never stored, so never acted on: the adapter retries.
                raise Unavailable("cannot store the payload") from exc
        inbound.count_payload(receipt.channel_kind, route, status, receipt.duplicate)
