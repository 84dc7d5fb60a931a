"""Gateway rows ↔ omni.gateway.v1 messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from omni.gateway.v1 import gateway_pb2 as pb

from services.gateway.service_layer.channels import Channel, CredentialRow
from services.gateway.service_layer.inbound import AcceptedOrder, StoredPayload
from services.gateway.service_layer.outbound import PushRow

KIND_TO_PROTO = {
    "own_online": pb.CHANNEL_KIND_OWN_ONLINE,
    "marketplace": pb.CHANNEL_KIND_MARKETPLACE,
    "store": pb.CHANNEL_KIND_STORE,
    "distribution": pb.CHANNEL_KIND_DISTRIBUTION,
    "local_life": pb.CHANNEL_KIND_LOCAL_LIFE,
}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}
CONNECTOR_TO_PROTO = {
    "pos": pb.CONNECTOR_TYPE_POS,
    "web_mall": pb.CONNECTOR_TYPE_WEB_MALL,
    "tmall": pb.CONNECTOR_TYPE_TMALL,
    "jd": pb.CONNECTOR_TYPE_JD,
    "distributor_shop": pb.CONNECTOR_TYPE_DISTRIBUTOR_SHOP,
    "local_life": pb.CONNECTOR_TYPE_LOCAL_LIFE,
}
CONNECTOR_FROM_PROTO = {v: k for k, v in CONNECTOR_TO_PROTO.items()}
STATUS_TO_PROTO = {"active": pb.CHANNEL_STATUS_ACTIVE, "suspended": pb.CHANNEL_STATUS_SUSPENDED}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}
OWNER_TO_PROTO = {"channel": pb.OWNER_KIND_CHANNEL, "partner": pb.OWNER_KIND_PARTNER}
OWNER_FROM_PROTO = {v: k for k, v in OWNER_TO_PROTO.items()}
OUTCOME_TO_PROTO = {
    "received": pb.PAYLOAD_OUTCOME_RECEIVED,
    "accepted": pb.PAYLOAD_OUTCOME_ACCEPTED,
    "rejected": pb.PAYLOAD_OUTCOME_REJECTED,
    "failed": pb.PAYLOAD_OUTCOME_FAILED,
}
OUTCOME_FROM_PROTO = {v: k for k, v in OUTCOME_TO_PROTO.items()}
PUSH_KIND_TO_PROTO = {
    "stock": pb.PUSH_KIND_STOCK,
    "order_status": pb.PUSH_KIND_ORDER_STATUS,
    "price": pb.PUSH_KIND_PRICE,
    "listing": pb.PUSH_KIND_LISTING,
}
PUSH_STATUS_TO_PROTO = {
    "pending": pb.PUSH_STATUS_PENDING,
    "delivered": pb.PUSH_STATUS_DELIVERED,
    "dead": pb.PUSH_STATUS_DEAD,
}


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def channel_to_proto(c: Channel) -> pb.Channel:
    cfg = c.config
    return pb.Channel(
        channel_id=cfg.channel_id,
        kind=KIND_TO_PROTO[cfg.kind],
        connector=CONNECTOR_TO_PROTO[cfg.connector],
        status=STATUS_TO_PROTO[cfg.status],
        rate_limit_per_second=cfg.rate_per_second,
        rate_limit_burst=cfg.burst,
        push_endpoint=cfg.push_endpoint,
        stock_channel=cfg.stock_channel,
        create_time=ts(c.created_at),
    )


def credential_to_proto(c: CredentialRow) -> pb.Credential:
    return pb.Credential(
        key_id=c.key_id,
        owner_kind=OWNER_TO_PROTO[c.owner_kind],
        owner_id=c.owner_id,
        channel_id=c.channel_id,
        scopes=list(c.scopes),
        rate_limit_per_second=c.rate_per_second,
        rate_limit_burst=c.burst,
        revoked=c.revoked,
        create_time=ts(c.created_at),
    )


def payload_to_proto(p: StoredPayload) -> pb.InboundPayload:
    return pb.InboundPayload(
        payload_id=p.payload_id,
        channel_id=p.channel_id,
        route=p.route,
        method=p.method,
        path=p.path,
        headers=p.headers,
        body=p.body,
        receive_time=ts(p.received_at),
        outcome=OUTCOME_TO_PROTO.get(p.outcome, pb.PAYLOAD_OUTCOME_UNSPECIFIED),
        http_status=p.http_status,
        error=p.error,
    )


def order_to_proto(o: AcceptedOrder) -> pb.ChannelOrder:
    return pb.ChannelOrder(
        channel_id=o.channel_id,
        channel_order_id=o.channel_order_id,
        order_id=o.order_id,
        order=o.order.SerializeToString(),
        partner_id=o.partner_id,
        status=o.status,
        accept_time=ts(o.accepted_at),
    )


def push_to_proto(p: PushRow) -> pb.Push:
    return pb.Push(
        push_id=p.push_id,
        channel_id=p.channel_id,
        kind=PUSH_KIND_TO_PROTO.get(p.kind, pb.PUSH_KIND_UNSPECIFIED),
        subject=p.subject,
        attempts=p.attempts,
        status=PUSH_STATUS_TO_PROTO.get(p.status, pb.PUSH_STATUS_UNSPECIFIED),
        last_error=p.last_error,
        event_time=ts(p.event_time),
        next_attempt_time=ts(p.next_attempt_at),
    )
