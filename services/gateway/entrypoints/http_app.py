"""The gateway's HTTP API for channel adapters and open-API partners (FastAPI).

Every POST is stored raw with its answer (PayloadRecorder); a request is authenticated
against cached keys (signature, replay window) and charged to its rate limit without a
round trip, validated, translated by its connector and accepted: the payload's store, the
nonce claim and the duplicate check are one statement, the acceptance with the recorded
answer another (service_layer/inbound.py). Refusals are JSON bodies in one shape
(entrypoints/errors.py). See services/gateway/README.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import grpc
import orjson
import uvicorn
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from omni.inventory.v1 import inventory_pb2
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.errors import DomainError, FailedPrecondition
from libs.service_app import Runtime
from libs.telemetry import instrument_http_app
from services.gateway import metrics
from services.gateway.connectors import distributor, jd, local_life, pos, tmall, web_mall
from services.gateway.domain.access import Caller, require_channel, require_scope
from services.gateway.domain.channels import ID_PATTERN
from services.gateway.domain.signatures import SignatureError
from services.gateway.entrypoints import errors
from services.gateway.entrypoints.input_guard import (
    BodyTooLarge,
    InputGuard,
    read_body,
    replaying,
    send_json,
)
from services.gateway.entrypoints.status_page import status_router
from services.gateway.service_layer import inbound, ingest, security
from services.gateway.service_layer.admission import Busy
from services.gateway.service_layer.channels import Channel, get_channel, load_key
from services.gateway.service_layer.ingest import Answer, Gateway, make_gateway

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 1_000_000
ChannelId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
# Ids from channels: any printable text (no control characters, which PostgreSQL or logs
# would choke on).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


def route_of(path: str) -> tuple[str, str]:
    """(channel id, route name) from the URL: /v1/channels/{id}/{connector}/{what} or
    /open/v1/{what}. Whatever is not a possible channel id or a known route is stored as
    "" / "unknown" (the raw path is kept whole), so a hostile URL cannot break the row or
    the metrics' label sets."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 5 and parts[:2] == ["v1", "channels"]:
        channel_id = parts[2] if ID_PATTERN.match(parts[2]) else ""
        return channel_id, known_route(f"{parts[3]}.{parts[4]}")
    if len(parts) >= 3 and parts[:2] == ["open", "v1"]:
        return "", known_route(f"open.{parts[2]}")
    return "", "unknown"


def known_route(name: str) -> str:
    return name if name in ingest.ROUTES else "unknown"


class PayloadRecorder:
    """ASGI middleware: every POST is stored with its answer. The payload itself is stored
    by the first statement that acts on it (``inbound.open_receipt``: with the nonce claim
    and, for an order, the duplicate check); a request refused before that (bad input,
    signature, rate limit, a busy platform, an unknown route) is stored here with its answer
    in one statement, and an opened one gets its answer recorded here unless the accepting
    statement did it. The answer leaves only after it was recorded; a payload that cannot be
    stored at all is answered 503 instead."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], gw: Gateway) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, MAX_BODY_BYTES)
        except BodyTooLarge:
            await send_json(send, 413, errors.body("PAYLOAD_TOO_LARGE", "body over 1 MB"))
            return
        if body is None:
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        raw_query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        channel_id, route = route_of(raw_path)
        receipt = inbound.Receipt(
            inbound.RawPayload(
                channel_id,
                route,
                "POST",
                inbound.redact_path(raw_path, raw_query),
                inbound.redact_headers(headers),
                body,
            )
        )
        scope.setdefault("state", {})["receipt"] = receipt
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replaying(body, receive), hold)
        except Exception:
            await self._settle(receipt, route, 500, "")
            raise
        status = int(start["status"]) if start is not None else 500
        answer = b"".join(chunks)
        error = answer.decode("utf-8", errors="replace") if status >= 400 else ""
        if not await self._settle(receipt, route, status, error):
            await send_json(send, 503, errors.body("UNAVAILABLE", "cannot store the payload"))
            return
        if start is not None:
            await send(start)
        await send({"type": "http.response.body", "body": answer})

    async def _settle(self, receipt: inbound.Receipt, route: str, status: int, error: str) -> bool:
        """Record the answer; False when the payload could not be stored at all."""
        try:
            await inbound.settle(self.gw.pg, receipt, status, error)
        except Exception:
            # Nothing was processed: the payload was never stored, so nothing acted on it.
            log.exception("could not store an inbound payload")
            inbound.count_payload(receipt.channel_kind, route, 503, False)
            return False
        inbound.count_payload(receipt.channel_kind, route, status, receipt.duplicate)
        return True


class FastJSON(JSONResponse):
    """JSON rendered by orjson (the standard library's encoder is several times slower)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def receipt_of(request: Request) -> inbound.Receipt | None:
    receipt: inbound.Receipt | None = request.scope.get("state", {}).get("receipt")
    return receipt


def error_json(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return FastJSON(payload, status_code=status, headers=headers)


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def authenticate(request: Request, style: str) -> tuple[Caller, Channel]:
    """The signature against the cached key and a token of the rate limit (no round trip);
    a POST's nonce is claimed with its payload's store, a read's here (one statement)."""
    gw = gateway_of(request)
    receipt = receipt_of(request)
    body = receipt.raw.body if receipt is not None else await request.body()
    # Signed as sent: the raw (still percent-encoded) path and query string.
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    path = raw_path.decode("latin-1")
    query_string: bytes = request.scope.get("query_string", b"")
    if query_string:
        path += "?" + query_string.decode("latin-1")
    auth = await security.authenticate(
        gw.directory,
        gw.limiter,
        style=style,
        headers=request.headers,
        query=dict(request.query_params) if style != "omni" else {},
        method=request.method,
        path=path,
        body=body,
        now=time.time(),
    )
    if receipt is not None:
        receipt.auth = auth
    else:
        await security.confirm(gw.pg, gw.directory, auth)
    return auth.caller, auth.channel


def channel_auth(style: str) -> Callable[..., Awaitable[tuple[Caller, Channel]]]:
    """A channel route: the key must act for the channel in the path."""

    async def dependency(request: Request, channel_id: ChannelId) -> tuple[Caller, Channel]:
        caller, channel = await authenticate(request, style)
        require_channel(caller, channel_id)
        return caller, channel

    return dependency


# The marketplaces' signature parameters, declared so the OpenAPI document (and the fuzzing
# against it) knows them; security.authenticate reads them from the query string itself.
QueryText = Annotated[str, Query(max_length=256)]


async def tmall_auth(
    request: Request,
    channel_id: ChannelId,
    app_key: QueryText = "",
    timestamp: QueryText = "",
    sign_method: QueryText = "",
    sign: QueryText = "",
) -> tuple[Caller, Channel]:
    """Tmall-style: app_key, timestamp (unix seconds), sign_method=hmac-sha256, sign."""
    caller, channel = await authenticate(request, "tmall")
    require_channel(caller, channel_id)
    return caller, channel


async def jd_auth(
    request: Request,
    channel_id: ChannelId,
    app_key: QueryText = "",
    timestamp: QueryText = "",
    v: QueryText = "",
    sign: QueryText = "",
) -> tuple[Caller, Channel]:
    """JD-style: app_key, timestamp (unix seconds), v=2.0, sign."""
    caller, channel = await authenticate(request, "jd")
    require_channel(caller, channel_id)
    return caller, channel


async def open_auth(request: Request) -> tuple[Caller, Channel]:
    return await authenticate(request, "omni")


Signed = Annotated[tuple[Caller, Channel], Depends(channel_auth("omni"))]
TmallSigned = Annotated[tuple[Caller, Channel], Depends(tmall_auth)]
JdSigned = Annotated[tuple[Caller, Channel], Depends(jd_auth)]
OpenSigned = Annotated[tuple[Caller, Channel], Depends(open_auth)]


# ---- response models (for the OpenAPI document) ---------------------------------------


class OrderAccepted(BaseModel):
    order_id: str
    channel_order_id: str
    status: str
    duplicate: bool


class ReturnAccepted(BaseModel):
    return_id: str
    order_id: str
    duplicate: bool


class MemberFound(BaseModel):
    member_id: str
    tier: int
    points_balance: int
    owner_guide_staff_id: str


class ErrorBody(BaseModel):
    error: dict[str, Any]


class SkuOut(BaseModel):
    sku_code: str
    name: str
    color: str
    size: str
    barcode: str
    price_minor: int | None = None
    currency: str | None = None
    sellable: bool | None = None


class FulfilmentUpdated(BaseModel):
    order_id: str
    fulfilment_id: str
    status: str
    tracking: str


class LocationStock(BaseModel):
    location_id: str
    available: int
    on_hand: int


class Availability(BaseModel):
    sku_code: str
    available: int
    locations: list[LocationStock] | None = None


class AvailabilityOut(BaseModel):
    skus: list[Availability]


class NearbyStore(BaseModel):
    location_id: str
    name: str
    city: str
    distance_meters: float
    available: dict[str, int]
    has_all: bool


class NearbyOut(BaseModel):
    locations: list[NearbyStore]


NEARBY_CAPABILITIES = {
    "any": inventory_pb2.CAPABILITY_UNSPECIFIED,
    "pickup": inventory_pb2.CAPABILITY_PICKUP,
    "same_city_delivery": inventory_pb2.CAPABILITY_SAME_CITY_DELIVERY,
    "express_shipping": inventory_pb2.CAPABILITY_EXPRESS_SHIPPING,
}


class FulfilmentOut(BaseModel):
    fulfilment_id: str
    location_id: str
    status: str
    handover: str
    handover_store_id: str
    tracking: str
    via_transfer: bool
    items: list[dict[str, Any]] = Field(default_factory=list)


class ReturnOut(BaseModel):
    return_id: str
    receiving_location_id: str
    refund_minor: int
    lines: list[dict[str, Any]] = Field(default_factory=list)


class OrderStatusOut(BaseModel):
    order_id: str
    channel_order_id: str
    status: str
    platform_status: str
    fulfilment_mode: str
    total_minor: int
    currency: str
    lines: list[dict[str, Any]] = Field(default_factory=list)
    fulfilments: list[FulfilmentOut] = Field(default_factory=list)
    returns: list[ReturnOut] = Field(default_factory=list)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 429, 503)
}


def create_app(gw: Gateway | None = None) -> FastAPI:
    """The app; without a Gateway only /healthz works (used by tests of the shell)."""
    app = FastAPI(title="Omni gateway", version="1.0.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if gw is None:
        return app
    app.state.gateway = gw

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        violations = errors.validation_violations(exc.errors())
        return error_json(
            422, errors.body("INVALID_ARGUMENT", "the request is invalid", violations)
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return error_json(exc.status_code, errors.body(code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        known = errors.from_exception(exc)
        if known is None:
            log.exception("unhandled error", exc_info=exc)
            return error_json(500, errors.body("INTERNAL", "internal error"))
        status, payload, headers = known
        if isinstance(exc, SignatureError):
            metrics.AUTH_FAILURES.labels(reason=exc.reason).inc()
        if isinstance(exc, security.RateLimited):
            metrics.RATE_LIMITED.inc()
        return error_json(status, payload, headers)

    # A handler for the base Exception runs outside every middleware (Starlette's
    # ServerErrorMiddleware); the known refusals are registered by class so they are
    # answered inside, where the payload store records the status.
    for kind in (
        SignatureError,
        Busy,
        security.RateLimited,
        security.ChannelSuspended,
        grpc.aio.AioRpcError,
        DomainError,
        ValidationError,
    ):
        app.add_exception_handler(kind, on_error)

    async def run(
        route: str, auth: tuple[Caller, Channel], body: BaseModel, request: Request
    ) -> JSONResponse:
        receipt = receipt_of(request)
        assert receipt is not None, "every POST passes the payload recorder"
        answer: Answer = await ingest.handle(gw, ingest.ROUTES[route], receipt, body)
        return FastJSON(answer.body, status_code=answer.status)

    responses = ERROR_RESPONSES

    @app.post(
        "/v1/channels/{channel_id}/pos/sales",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["pos"],
    )
    async def pos_sales(
        channel_id: ChannelId, body: pos.PosSaleIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A store sale at the till (fulfilled on the spot)."""
        return await run("pos.sales", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/pos/endless-aisle-orders",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["pos"],
    )
    async def pos_endless(
        channel_id: ChannelId, body: pos.EndlessAisleIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """An endless-aisle sale: sold here, fulfilled from elsewhere."""
        return await run("pos.endless-aisle-orders", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/pos/member-scans",
        response_model=MemberFound,
        responses=responses,
        tags=["pos"],
    )
    async def pos_scan(
        channel_id: ChannelId, body: pos.MemberScanIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A member code scanned at the till."""
        return await run("pos.member-scans", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/pos/member-sign-ups",
        response_model=MemberFound,
        status_code=201,
        responses=responses,
        tags=["pos"],
    )
    async def pos_sign_up(
        channel_id: ChannelId, body: pos.MemberSignUpIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A customer joins at the till with a guide, who becomes the owner."""
        return await run("pos.member-sign-ups", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/pos/returns",
        response_model=ReturnAccepted,
        status_code=201,
        responses=responses,
        tags=["pos"],
    )
    async def pos_returns(
        channel_id: ChannelId, body: pos.CounterReturnIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A return at the counter of any store."""
        return await run("pos.returns", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/pos/fulfilment-updates",
        response_model=FulfilmentUpdated,
        responses=responses,
        tags=["pos"],
    )
    async def pos_fulfilment_updates(
        channel_id: ChannelId, body: pos.FulfilmentUpdateIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A store's work on a fulfilment order routed to it: shipped (with tracking),
        ready for pickup, picked up, delivered."""
        return await run("pos.fulfilment-updates", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/mall/orders",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["web mall"],
    )
    async def mall_orders(
        channel_id: ChannelId, body: web_mall.MallOrderIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """An order from the own web mall or WeChat mini program."""
        return await run("mall.orders", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/tmall/trades",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["marketplaces"],
    )
    async def tmall_trades(
        channel_id: ChannelId, body: tmall.TmallTradeIn, request: Request, auth: TmallSigned
    ) -> JSONResponse:
        """A Tmall/Taobao-style paid trade (Tmall-style signature in the query)."""
        return await run("tmall.trades", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/jd/orders",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["marketplaces"],
    )
    async def jd_orders(
        channel_id: ChannelId, body: jd.JdOrderIn, request: Request, auth: JdSigned
    ) -> JSONResponse:
        """A JD-style order (JD-style signature in the query)."""
        return await run("jd.orders", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/distributor/orders",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["distribution"],
    )
    async def distributor_orders(
        channel_id: ChannelId, body: distributor.ShopOrderIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """An order from a distributor's shop."""
        return await run("distributor.orders", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/local-life/vouchers",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["local life"],
    )
    async def voucher_orders(
        channel_id: ChannelId, body: local_life.VoucherOrderIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A voucher paid online for a store."""
        return await run("local-life.vouchers", auth, body, request)

    @app.post(
        "/v1/channels/{channel_id}/local-life/redemptions",
        response_model=OrderAccepted,
        responses=responses,
        tags=["local life"],
    )
    async def voucher_redemptions(
        channel_id: ChannelId, body: local_life.RedemptionIn, request: Request, auth: Signed
    ) -> JSONResponse:
        """A voucher consumed in its store."""
        return await run("local-life.redemptions", auth, body, request)

    # ---- open API (开放平台) -----------------------------------------------------------

    @app.get(
        "/open/v1/skus/{sku_code}", response_model=SkuOut, responses=responses, tags=["open api"]
    )
    async def open_sku(
        sku_code: Annotated[str, Path(min_length=1, max_length=64, pattern=PRINTABLE)],
        auth: OpenSigned,
    ) -> SkuOut:
        """A SKU and its price on the key's channel."""
        caller, channel = auth
        require_scope(caller, "catalog:read")
        sku = await gw.peers.sku(sku_code)
        out = SkuOut(
            sku_code=sku.sku_code,
            name=sku.name,
            color=sku.color,
            size=sku.size,
            barcode=sku.barcode,
        )
        try:
            price = await gw.peers.price(channel.config.channel_id, sku_code)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                raise
            return out
        out.price_minor = price.price.amount_minor
        out.currency = price.price.currency_code
        out.sellable = price.sellable
        return out

    @app.get(
        "/open/v1/availability",
        response_model=AvailabilityOut,
        response_model_exclude_none=True,
        responses=responses,
        tags=["open api"],
    )
    async def open_availability(
        sku_codes: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]],
            Query(min_length=1, max_length=100),
        ],
        auth: OpenSigned,
        include_locations: bool = False,
    ) -> AvailabilityOut:
        """Available to promise on the key's channel, per SKU; with include_locations, per
        location serving the channel too (what a store or a partner shows as 'in stock
        at')."""
        caller, channel = auth
        require_scope(caller, "availability:read")
        found = await gw.peers.availability(
            channel.config.stock_channel, sku_codes, include_locations
        )
        out: list[Availability] = []
        for s in dict.fromkeys(sku_codes):
            item = found.get(s)
            locations = None
            if include_locations:
                locations = [
                    LocationStock(
                        location_id=x.location_id,
                        available=int(x.available),
                        on_hand=int(x.on_hand),
                    )
                    for x in (item.locations if item is not None else [])
                ]
            out.append(
                Availability(
                    sku_code=s,
                    available=int(item.available) if item is not None else 0,
                    locations=locations,
                )
            )
        return AvailabilityOut(skus=out)

    @app.get(
        "/open/v1/nearby-stock",
        response_model=NearbyOut,
        responses=responses,
        tags=["open api"],
    )
    async def open_nearby_stock(
        sku_codes: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]],
            Query(min_length=1, max_length=50),
        ],
        latitude: Annotated[float, Query(ge=-90, le=90)],
        longitude: Annotated[float, Query(ge=-180, le=180)],
        auth: OpenSigned,
        radius_meters: Annotated[float, Query(gt=0, le=1_000_000)] = 20_000,
        capability: Literal["any", "pickup", "same_city_delivery", "express_shipping"] = "any",
        max_results: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> NearbyOut:
        """Stores serving the key's channel near a point that hold the SKUs (附近门店),
        nearest first: where to try it on, pick it up, or have it delivered from."""
        caller, channel = auth
        require_scope(caller, "availability:read")
        found = await gw.peers.nearest(
            channel.config.stock_channel,
            list(dict.fromkeys(sku_codes)),
            latitude,
            longitude,
            radius_meters,
            NEARBY_CAPABILITIES[capability],
            max_results,
        )
        return NearbyOut(
            locations=[
                NearbyStore(
                    location_id=x.location.location_id,
                    name=x.location.name,
                    city=x.location.city,
                    distance_meters=round(x.distance_meters, 1),
                    available={a.sku_code: int(a.quantity) for a in x.available},
                    has_all=x.has_all,
                )
                for x in found
            ]
        )

    @app.post(
        "/open/v1/orders",
        response_model=OrderAccepted,
        status_code=201,
        responses=responses,
        tags=["open api"],
    )
    async def open_orders(
        body: distributor.ShopOrderIn, request: Request, auth: OpenSigned
    ) -> JSONResponse:
        """Submit an order as a partner (distributor-shop format) on the key's channel."""
        return await run("open.orders", auth, body, request)

    @app.get(
        "/open/v1/orders/{channel_order_id}",
        response_model=OrderStatusOut,
        responses=responses,
        tags=["open api"],
    )
    async def open_order_status(
        channel_order_id: Annotated[str, Path(min_length=1, max_length=64, pattern=PRINTABLE)],
        auth: OpenSigned,
    ) -> OrderStatusOut:
        """An order's status, its fulfilment orders (where from, tracking) and returns; a
        partner sees only the orders it submitted, by its own order id."""
        caller, channel = auth
        require_scope(caller, "orders:read")
        view = await ingest.order_view(gw, caller, channel, channel_order_id)
        return OrderStatusOut.model_validate(view)

    # Starlette runs the last added outermost: the payload recorder, then the input guard.
    app.add_middleware(InputGuard, max_body=MAX_BODY_BYTES)
    app.add_middleware(PayloadRecorder, gw=gw)
    return app


async def replay(gw: Gateway, payload_id: int) -> Answer:
    """ReplayPayload: run a stored payload through its route again, as the key that sent it
    (its signature was checked when it arrived; the nonce is not checked again). The stored
    payload keeps its first answer."""
    async with gw.db.session() as session:
        payload = await inbound.load_payload(session, payload_id)
        route = ingest.ROUTES.get(payload.route)
        if route is None:
            raise FailedPrecondition(f"payload {payload_id} has no replayable route")
        key_id = payload.headers.get("x-omni-key", "")
        if route.style != "omni" and payload.method == "POST":
            key_id = dict(parse_qsl(payload.path.partition("?")[2])).get("app_key", "")
        found = await load_key(session, key_id)
        if found is None:
            raise FailedPrecondition(f"payload {payload_id} was not sent with a known key")
        cred = found[0]
        channel = await get_channel(session, cred.channel_id)
    receipt = inbound.Receipt.stored(
        payload_id,
        inbound.RawPayload(
            payload.channel_id,
            payload.route,
            payload.method,
            payload.path,
            payload.headers,
            payload.body,
        ),
    )
    receipt.auth = security.Authenticated(security.caller_of(cred), channel, "")
    try:
        body = route.model.model_validate_json(payload.body)
        return await ingest.handle(gw, route, receipt, body)
    except Exception as exc:
        known = errors.from_exception(exc)
        if known is None:
            raise
        return Answer(known[0], known[1])


async def serve_http(runtime: Runtime, gw: Gateway | None = None) -> None:
    gateway = gw or make_gateway(runtime)
    app = create_app(gateway)
    app.include_router(status_router(runtime.settings))
    instrument_http_app(app)
    config = uvicorn.Config(
        app,
        host=runtime.settings.grpc_host,
        port=runtime.settings.gateway_http_port,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        raise
