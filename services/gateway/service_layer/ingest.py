"""What each inbound route does once the request is authentic: the connector translates,
the gateway accepts (once), and the answer goes back in JSON. The HTTP API,
SubmitChannelOrder and ReplayPayload all come through here, so a replay does exactly what
the original did."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from omni.order.v1 import order_pb2
from pydantic import BaseModel

from libs.db import Database
from libs.errors import NotFound, PermissionDenied
from libs.pg import Pg
from libs.service_app import Runtime
from libs.unit_of_work import UnitOfWorkFactory
from services.gateway import metrics
from services.gateway.adapters.peers import Peers, enum_name
from services.gateway.connectors import distributor, jd, local_life, pos, tmall, web_mall
from services.gateway.domain import vouchers
from services.gateway.domain.access import Caller, require_owner, require_scope
from services.gateway.domain.channels import Channel
from services.gateway.domain.inbound import OrderTaken
from services.gateway.service_layer import inbound
from services.gateway.service_layer import vouchers as voucher_use_cases
from services.gateway.service_layer.admission import (
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_RETRY_AFTER_SECONDS,
    DEFAULT_WAIT_SECONDS,
    Admission,
    Busy,
)
from services.gateway.service_layer.directory import DEFAULT_TTL_SECONDS, Directory
from services.gateway.service_layer.inbound import Receipt
from services.gateway.service_layer.rate_limiter import RateLimiter


@dataclass(frozen=True)
class Gateway:
    """What the HTTP side, the servicer and the pusher of one process share."""

    db: Database
    uow_factory: UnitOfWorkFactory
    peers: Peers
    pg: Pg
    directory: Directory
    limiter: RateLimiter
    admission: Admission


def make_gateway(runtime: Runtime) -> Gateway:
    """OMNI_GATEWAY_CONFIG_TTL_SECONDS, OMNI_GATEWAY_MAX_INFLIGHT_ORDERS,
    OMNI_GATEWAY_ADMISSION_WAIT_SECONDS, OMNI_GATEWAY_RETRY_AFTER_SECONDS."""
    extra = runtime.settings.extra
    return Gateway(
        runtime.db,
        runtime.uow_factory,
        Peers(runtime.settings),
        runtime.pg,
        Directory(
            runtime.pg, float(extra.get("OMNI_GATEWAY_CONFIG_TTL_SECONDS", DEFAULT_TTL_SECONDS))
        ),
        RateLimiter(runtime.pg),
        Admission(
            int(extra.get("OMNI_GATEWAY_MAX_INFLIGHT_ORDERS", DEFAULT_MAX_INFLIGHT)),
            float(extra.get("OMNI_GATEWAY_ADMISSION_WAIT_SECONDS", DEFAULT_WAIT_SECONDS)),
            int(extra.get("OMNI_GATEWAY_RETRY_AFTER_SECONDS", DEFAULT_RETRY_AFTER_SECONDS)),
        ),
    )


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


Handler = Callable[[Gateway, Receipt, Any], Awaitable[Answer]]


def order_answer(taken: OrderTaken) -> Answer:
    return Answer(
        201 if taken.created else 200,
        {
            "order_id": taken.order_id,
            "channel_order_id": distributor.own_order_id(taken.partner_id, taken.channel_order_id),
            "status": taken.status,
            "duplicate": not taken.created,
        },
    )


PAID_ONLINE = order_pb2.PAYMENT_STATE_PAID_ONLINE
PAID_AT_POS = order_pb2.PAYMENT_STATE_PAID_AT_POS

# The order service's answers that mean "not now": the channel is told to come back.
BUSY_CODES = frozenset(
    {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


def who(receipt: Receipt) -> tuple[Caller, Channel]:
    assert receipt.auth is not None, "routes run only for authenticated requests"
    return receipt.auth.caller, receipt.auth.channel


async def capture(
    gw: Gateway,
    receipt: Receipt,
    channel_order_id: str,
    payment: order_pb2.PaymentState.ValueType,
    build: Callable[[], Awaitable[order_pb2.Order]],
    partner_id: str = "",
    voucher_code_sha256: str = "",
) -> Answer:
    """A channel order reaches the platform once. Within a capture slot (back-pressure:
    none free in time → 503 busy, nothing done but storing the payload with that answer):
    store the payload and find whether the order was taken before (one statement; a retry
    is answered from it); else translate (``build``, which may map marketplace SKUs), let
    the order service capture it (idempotent by a request id derived from the content, and
    by channel + channel order id), and record it with the payload's answer (one
    statement). A crash between capture and record is healed by the channel's retry."""
    _, channel = who(receipt)
    async with gw.admission.slot():
        existing = await inbound.open_receipt(gw.pg, gw.directory, receipt, channel_order_id)
        if existing is not None:
            metrics.ORDERS.labels(channel_kind=channel.config.kind, outcome="duplicate").inc()
            return order_answer(existing)
        order = await build()
        order.stock_channel = channel.config.stock_channel
        digest = hashlib.sha256(order.SerializeToString(deterministic=True)).hexdigest()
        try:
            platform = await gw.peers.capture_order(f"gw:{digest[:48]}", order, payment)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in BUSY_CODES:
                raise
            metrics.SHED.labels(reason="peer_busy").inc()
            raise Busy(gw.admission.retry_after, "the order service is busy") from exc
        order.order_id = platform.order_id
        taken = await inbound.accept_order(gw.pg, order, receipt, partner_id, voucher_code_sha256)
    return order_answer(taken)


async def order_view(
    gw: Gateway, caller: Caller, channel: Channel, channel_order_id: str
) -> dict[str, Any]:
    """What a channel or partner may know of one of its orders: the gateway's status, the
    platform's, where each fulfilment order goes from (and its tracking), returns. A
    partner names its orders by its own id and sees only those."""
    partner = caller.owner_id if caller.owner_kind == "partner" else ""
    async with gw.db.session() as session:
        found = await inbound.find_order(
            session,
            channel.config.channel_id,
            distributor.partner_order_id(partner, channel_order_id),
        )
    require_owner(caller, found.channel_id, found.partner_id)
    platform = await gw.peers.get_order(found.order_id)
    return {
        "order_id": found.order_id,
        "channel_order_id": distributor.own_order_id(found.partner_id, found.channel_order_id),
        "status": found.status,
        "platform_status": enum_name(order_pb2.OrderStatus, platform.order.status),
        "fulfilment_mode": enum_name(order_pb2.FulfilmentMode, platform.order.fulfilment_mode),
        "total_minor": found.order.total.amount_minor,
        "currency": found.order.total.currency_code,
        # The platform's line ids: the ones fulfilment orders and returns refer to.
        "lines": [
            {"line_id": x.line_id, "sku_code": x.sku_code, "quantity": x.quantity}
            for x in platform.order.lines
        ],
        "fulfilments": [
            {
                "fulfilment_id": f.fulfilment_id,
                "location_id": f.location_id,
                "status": enum_name(order_pb2.FulfilmentStatus, f.status),
                "handover": enum_name(order_pb2.HandoverKind, f.handover),
                "handover_store_id": f.handover_store_id,
                "tracking": f.assignee,
                "via_transfer": bool(f.transfer_id),
                "items": [
                    {"line_id": i.line_id, "sku_code": i.sku_code, "quantity": i.quantity}
                    for i in f.items
                ],
            }
            for f in platform.fulfilment_orders
        ],
        "returns": [
            {
                "return_id": r.return_id,
                "receiving_location_id": r.receiving_location_id,
                "refund_minor": r.refund_total.amount_minor,
                "lines": [
                    {"line_id": x.line_id, "sku_code": x.sku_code, "quantity": x.quantity}
                    for x in r.lines
                ],
            }
            for r in platform.returns
        ],
    }


def _connector(channel: Channel, *allowed: str) -> None:
    if channel.config.connector not in allowed:
        raise NotFound(
            f"channel {channel.config.channel_id} uses the {channel.config.connector} connector"
        )


def _later(make: Callable[[], order_pb2.Order]) -> Callable[[], Awaitable[order_pb2.Order]]:
    """Translate only once the order is known to be new (a retry is answered without)."""

    async def build() -> order_pb2.Order:
        return make()

    return build


async def pos_sale(gw: Gateway, r: Receipt, body: pos.PosSaleIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "pos")
    require_scope(caller, "orders:write")
    make = lambda: pos.store_sale(channel.config.channel_id, body)  # noqa: E731
    return await capture(gw, r, body.sale_id, PAID_AT_POS, _later(make))


async def pos_endless_aisle(gw: Gateway, r: Receipt, body: pos.EndlessAisleIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "pos")
    require_scope(caller, "orders:write")
    make = lambda: pos.endless_aisle(channel.config.channel_id, body)  # noqa: E731
    return await capture(gw, r, body.sale_id, PAID_AT_POS, _later(make))


async def pos_member_scan(gw: Gateway, r: Receipt, body: pos.MemberScanIn) -> Answer:
    """The member code shown in the app, scanned at the till: who the member is (no
    personal data beyond the masked name the member service returns)."""
    caller, channel = who(r)
    _connector(channel, "pos")
    require_scope(caller, "members:read")
    member = await gw.peers.member_by_code(f"gw-scan-{body.store_id}-{body.code}", body.code)
    return Answer(
        200,
        {
            "member_id": member.member_id,
            "tier": member.tier,
            "points_balance": member.points_balance,
            "owner_guide_staff_id": member.owner_guide_staff_id,
        },
    )


async def pos_member_sign_up(gw: Gateway, r: Receipt, body: pos.MemberSignUpIn) -> Answer:
    """Sign-up at the till with a guide; the same phone again is the same member (the
    member service dedupes by phone), so a retried request is safe."""
    caller, channel = who(r)
    _connector(channel, "pos")
    require_scope(caller, "members:write")
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()[:40]
    member = await gw.peers.sign_up_with_guide(
        f"gw:signup:{digest}", body.phone, body.name, body.store_id, body.guide_staff_id
    )
    return Answer(
        201,
        {
            "member_id": member.member_id,
            "tier": member.tier,
            "points_balance": member.points_balance,
            "owner_guide_staff_id": member.owner_guide_staff_id,
        },
    )


async def pos_return(gw: Gateway, r: Receipt, body: pos.CounterReturnIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "pos")
    require_scope(caller, "returns:write")
    command = pos.counter_return(channel.config.channel_id, body)
    async with gw.db.session() as session:
        if await inbound.find_order_by_id(session, command.order_id) is None:
            raise NotFound(f"order {command.order_id} was not taken through this gateway")
    platform = await gw.peers.get_order(command.order_id)
    lines = pos.platform_lines(command.lines, [x.line_id for x in platform.order.lines])
    received = await gw.peers.receive_return(
        f"gw:return:{command.channel_id}:{command.return_id}"[:128],
        command.order_id,
        command.receiving_location_id,
        lines,
    )
    created = await inbound.record_return(gw.uow_factory, command)
    r.duplicate = not created
    return Answer(
        201 if created else 200,
        {
            "return_id": body.return_id,
            "platform_return_id": received.return_id,
            "order_id": body.order_id,
            "refund_minor": received.refund_total.amount_minor,
            "duplicate": not created,
        },
    )


async def pos_fulfilment_update(gw: Gateway, r: Receipt, body: pos.FulfilmentUpdateIn) -> Answer:
    """A store of the POS channel reports its work on a fulfilment order routed to it: only
    a store serving the channel, only for a fulfilment order that is that store's (goods
    leave from it, or are handed over there). Each step is idempotent by fulfilment and
    action, so a re-sent report is answered again without a second effect."""
    caller, channel = who(r)
    _connector(channel, "pos")
    require_scope(caller, "fulfilments:write")
    store = await gw.peers.location(body.store_id)
    served = {channel.config.channel_id, channel.config.stock_channel}
    if not served & set(store.channels):
        raise PermissionDenied(
            f"store {body.store_id} does not serve channel {channel.config.channel_id}"
        )
    found = await gw.peers.get_order(body.order_id)
    leg = next((f for f in found.fulfilment_orders if f.fulfilment_id == body.fulfilment_id), None)
    if leg is None:
        raise NotFound(
            f"order {body.order_id} has no fulfilment order {body.fulfilment_id}",
            field="fulfilment_id",
        )
    if not pos.may_report(body.action, leg.location_id, leg.handover_store_id, body.store_id):
        raise PermissionDenied(
            f"fulfilment {body.fulfilment_id} is not store {body.store_id}'s to mark {body.action}"
        )
    request_id = f"gw:{body.action}:{leg.fulfilment_id}"[:128]
    if body.action == "shipped":
        updated = await gw.peers.ship_fulfilment(request_id, leg.fulfilment_id, body.tracking)
    elif body.action == "ready_for_pickup":
        updated = await gw.peers.mark_ready(request_id, leg.fulfilment_id)
    else:
        updated = await gw.peers.confirm_delivery(request_id, leg.fulfilment_id)
    return Answer(
        200,
        {
            "order_id": updated.order_id,
            "fulfilment_id": updated.fulfilment_id,
            "status": enum_name(order_pb2.FulfilmentStatus, updated.status),
            "tracking": updated.assignee,
        },
    )


async def mall_order(gw: Gateway, r: Receipt, body: web_mall.MallOrderIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "web_mall")
    require_scope(caller, "orders:write")
    make = lambda: web_mall.mall_order(channel.config.channel_id, body)  # noqa: E731
    return await capture(gw, r, body.order_no, PAID_ONLINE, _later(make))


async def tmall_trade(gw: Gateway, r: Receipt, body: tmall.TmallTradeIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "tmall")
    require_scope(caller, "orders:write")
    channel_id = channel.config.channel_id

    async def build() -> order_pb2.Order:
        mapping = await gw.peers.sku_codes_for(channel_id, tmall.external_ids(body))
        return tmall.trade(channel_id, body, mapping)

    return await capture(gw, r, body.tid, PAID_ONLINE, build)


async def jd_order(gw: Gateway, r: Receipt, body: jd.JdOrderIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "jd")
    require_scope(caller, "orders:write")
    channel_id = channel.config.channel_id

    async def build() -> order_pb2.Order:
        mapping = await gw.peers.sku_codes_for(channel_id, jd.external_ids(body))
        return jd.order(channel_id, body, mapping)

    return await capture(gw, r, str(body.orderId), PAID_ONLINE, build)


async def shop_order(gw: Gateway, r: Receipt, body: distributor.ShopOrderIn) -> Answer:
    """A distributor shop's order; a partner key may only submit as its own distributor, and
    its order ids are its own: another partner's order with the same id is another order
    (the ids are scoped as "<partner>/<id>" on the channel and in the order service)."""
    caller, channel = who(r)
    require_scope(caller, "orders:write")
    if caller.owner_kind == "partner" and body.distributor_id != caller.owner_id:
        raise PermissionDenied("a partner submits orders only as its own distributor")
    partner = caller.owner_id if caller.owner_kind == "partner" else ""
    make = lambda: distributor.shop_order(channel.config.channel_id, body, partner)  # noqa: E731
    order_id = distributor.partner_order_id(partner, body.shop_order_id)
    return await capture(gw, r, order_id, PAID_ONLINE, _later(make), partner)


async def distributor_order(gw: Gateway, r: Receipt, body: distributor.ShopOrderIn) -> Answer:
    _connector(who(r)[1], "distributor_shop")
    return await shop_order(gw, r, body)


async def voucher_order(gw: Gateway, r: Receipt, body: local_life.VoucherOrderIn) -> Answer:
    caller, channel = who(r)
    _connector(channel, "local_life")
    require_scope(caller, "orders:write")
    make = lambda: local_life.voucher_order(channel.config.channel_id, body)  # noqa: E731
    digest = vouchers.code_digest(
        channel.config.channel_id, body.voucher_order_id, body.voucher_code
    )
    return await capture(
        gw, r, body.voucher_order_id, PAID_ONLINE, _later(make), voucher_code_sha256=digest
    )


async def voucher_redemption(gw: Gateway, r: Receipt, body: local_life.RedemptionIn) -> Answer:
    """200 once the goods were handed over in the store (and for every repeat); 409 with
    the reason, nothing changed, when they cannot be yet."""
    caller, channel = who(r)
    _connector(channel, "local_life")
    require_scope(caller, "orders:write")
    redemption = local_life.redemption(channel.config.channel_id, body)
    accepted = await voucher_use_cases.redeem(gw.uow_factory, gw.peers, redemption)
    r.duplicate = not accepted.created
    return Answer(
        200,
        {
            "order_id": accepted.order_id,
            "channel_order_id": accepted.channel_order_id,
            "status": accepted.status,
            "duplicate": not accepted.created,
        },
    )


@dataclass(frozen=True)
class Route:
    name: str
    # "omni" signature headers, or a marketplace's own scheme.
    style: str
    model: type[BaseModel]
    handler: Handler
    # Order routes store their payload with the duplicate check (``capture``); every other
    # route's payload is stored before its handler runs.
    takes_orders: bool = False


async def handle(gw: Gateway, route: Route, receipt: Receipt, body: BaseModel) -> Answer:
    """Run a route for an authenticated request: its payload is stored before the handler
    acts (by ``capture`` for order routes, here for the others)."""
    if not route.takes_orders:
        await inbound.open_receipt(gw.pg, gw.directory, receipt)
    return await route.handler(gw, receipt, body)


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("pos.sales", "omni", pos.PosSaleIn, pos_sale, True),
        Route("pos.endless-aisle-orders", "omni", pos.EndlessAisleIn, pos_endless_aisle, True),
        Route("pos.member-scans", "omni", pos.MemberScanIn, pos_member_scan),
        Route("pos.returns", "omni", pos.CounterReturnIn, pos_return),
        Route("pos.member-sign-ups", "omni", pos.MemberSignUpIn, pos_member_sign_up),
        Route("pos.fulfilment-updates", "omni", pos.FulfilmentUpdateIn, pos_fulfilment_update),
        Route("mall.orders", "omni", web_mall.MallOrderIn, mall_order, True),
        Route("tmall.trades", "tmall", tmall.TmallTradeIn, tmall_trade, True),
        Route("jd.orders", "jd", jd.JdOrderIn, jd_order, True),
        Route("distributor.orders", "omni", distributor.ShopOrderIn, distributor_order, True),
        Route("local-life.vouchers", "omni", local_life.VoucherOrderIn, voucher_order, True),
        Route("local-life.redemptions", "omni", local_life.RedemptionIn, voucher_redemption),
        Route("open.orders", "omni", distributor.ShopOrderIn, shop_order, True),
    )
}
