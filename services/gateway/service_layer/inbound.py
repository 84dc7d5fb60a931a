"""Inbound guarantees: the raw payload is stored before anything acts on it, and every
answer is recorded with it; a channel order is accepted once per (channel, channel order
id) whatever the retries.

A request's life in the database, on plain asyncpg (adapters/payload_store.py,
adapters/order_store.py):
1. ``open_receipt``: ONE statement stores the payload, claims the nonce, re-checks the key
   and the channel, and finds the channel order a retry refers to (a retry's answer, 200
   duplicate, is recorded by the same statement);
2. the order service captures the order (gRPC);
3. ``accept_order``: ONE statement records the channel order and the payload's answer.
A request refused before step 1 (bad input, signature, rate limit, busy) is stored with its
answer in one statement (``settle``); one refused after step 1 has its answer recorded by
one more.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from omni.order.v1 import order_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from libs.errors import NotFound
from libs.pg import Pg
from libs.unit_of_work import UnitOfWorkFactory
from services.gateway import metrics
from services.gateway.adapters import order_store, payload_store
from services.gateway.adapters.payload_store import RawPayload
from services.gateway.connectors.pos import ReturnCommand
from services.gateway.domain.channels import CONNECTOR_KIND
from services.gateway.domain.inbound import (
    STATUS_RANK,
    UNAUTHENTICATED_BODY_BYTES,
    UNAUTHENTICATED_TTL_SECONDS,
    AcceptedOrder,
    OrderTaken,
    StoredPayload,
    later_than,
    outcome_for,
    result_for,
)
from services.gateway.service_layer.directory import Directory
from services.gateway.service_layer.security import Authenticated, check_verdict

__all__ = [
    "STATUS_RANK",
    "UNAUTHENTICATED_BODY_BYTES",
    "UNAUTHENTICATED_TTL_SECONDS",
    "AcceptedOrder",
    "RawPayload",
    "Receipt",
    "StoredPayload",
    "later_than",
    "outcome_for",
    "result_for",
]

log = logging.getLogger(__name__)

# Never stored: anything that could let a reader forge or replay a request.
SECRET_HEADERS = frozenset({"authorization", "x-omni-signature", "cookie", "proxy-authorization"})
SECRET_PARAMS = frozenset({"sign", "access_token", "app_secret"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Without secrets; NUL (which JSONB cannot hold) shown as U+FFFD."""
    return {
        k.lower().replace("\x00", "\ufffd"): v.replace("\x00", "\ufffd")
        for k, v in headers.items()
        if k.lower() not in SECRET_HEADERS
    }


def redact_path(raw_path: str, raw_query: str) -> str:
    """The path and query as sent (still percent-encoded, so always storable text), without
    signature parameters."""
    kept = [p for p in raw_query.split("&") if p and p.partition("=")[0] not in SECRET_PARAMS]
    return raw_path + ("?" + "&".join(kept) if kept else "")


# The connector each channel route belongs to (the open API's is the key's channel's).
ROUTE_CONNECTOR = {
    "pos": "pos",
    "mall": "web_mall",
    "tmall": "tmall",
    "jd": "jd",
    "distributor": "distributor_shop",
    "local-life": "local_life",
}


def kind_of_route(route: str) -> str:
    connector = ROUTE_CONNECTOR.get(route.partition(".")[0], "")
    return CONNECTOR_KIND.get(connector, "unknown")


def count_payload(channel_kind: str | None, route: str, status: int, duplicate: bool) -> None:
    """One inbound payload answered: by the authenticated channel's kind (else the kind
    its route serves), route and result."""
    metrics.INBOUND_PAYLOADS.labels(
        channel_kind=channel_kind or kind_of_route(route),
        route=route,
        result=result_for(status, duplicate),
    ).inc()
    metrics.INBOUND_OUTCOMES.labels(outcome=outcome_for(status)).inc()


@dataclass
class Receipt:
    """One inbound payload on its way through the gateway (HTTP POST, SubmitChannelOrder or
    a replay): not yet stored (``payload_id`` None), stored, and answered."""

    raw: RawPayload
    payload_id: int | None = None
    # The answer is in the row already (a replay's row keeps its first answer).
    answered: bool = False
    # Set once the signature checked out (and cleared if the database then refuses the key,
    # channel or nonce): the body is kept whole, the metrics name the channel's kind.
    auth: Authenticated | None = None
    duplicate: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def stored(cls, payload_id: int, raw: RawPayload) -> Receipt:
        return cls(raw, payload_id, answered=True)

    @property
    def channel_kind(self) -> str | None:
        return None if self.auth is None else self.auth.channel.config.kind


async def open_receipt(
    pg: Pg, directory: Directory, receipt: Receipt, channel_order_id: str = ""
) -> OrderTaken | None:
    """Step 1: store the payload (committed before anything acts on it) together with the
    nonce claim and the key and channel re-check, and find the channel order
    ``channel_order_id`` if it was taken before. A payload stored already (a replay) only
    looks the order up."""
    if receipt.payload_id is not None:
        if not channel_order_id:
            return None
        assert receipt.auth is not None
        found = await order_store.find_brief(
            pg, receipt.auth.channel.config.channel_id, channel_order_id
        )
        return None if found is None else OrderTaken(channel_order_id, *found, created=False)
    auth = receipt.auth
    assert auth is not None, "a receipt is opened once its signature checked out"
    opened = await payload_store.open_payload(
        pg,
        receipt.raw,
        auth.caller.key_id,
        auth.channel.config.channel_id,
        auth.nonce,
        channel_order_id,
    )
    receipt.payload_id = opened.payload_id
    if not opened.admitted:
        receipt.auth = None
        check_verdict(directory, auth, opened.key_ok, opened.channel_status, False)
    if opened.order_id is None:
        return None
    receipt.answered = True
    receipt.duplicate = True
    return OrderTaken(channel_order_id, opened.order_id, opened.partner_id, opened.status, False)


async def accept_order(
    pg: Pg,
    order: order_pb2.Order,
    receipt: Receipt,
    partner_id: str = "",
    voucher_code_sha256: str = "",
) -> OrderTaken:
    """Step 3, once per (channel, channel order id): the first payload wins, every retry (or
    a replay) gets the same order id back with ``created`` False. ``order.order_id`` is the
    platform's (from the order service)."""
    record = not receipt.answered
    order_id, partner, status, created = await order_store.accept(
        pg, order, receipt.payload_id, partner_id, voucher_code_sha256, record
    )
    receipt.answered = receipt.answered or record
    receipt.duplicate = not created
    kind = order_pb2.ChannelKind.Name(order.channel_kind).removeprefix("CHANNEL_KIND_").lower()
    metrics.ORDERS.labels(channel_kind=kind, outcome="accepted" if created else "duplicate").inc()
    return OrderTaken(order.channel_order_id, order_id, partner, status, created)


async def settle(pg: Pg, receipt: Receipt, status: int, error: str) -> None:
    """Record the answer: with the payload when it was never stored (one statement), else
    on its row (unless already there). Raises when a never-stored payload cannot be stored:
    the caller must then answer 503 instead."""
    authenticated = receipt.auth is not None
    channel_id = receipt.auth.channel.config.channel_id if receipt.auth is not None else ""
    raw = receipt.raw
    if receipt.payload_id is None:
        if channel_id:
            raw = RawPayload(channel_id, raw.route, raw.method, raw.path, raw.headers, raw.body)
        receipt.payload_id = await payload_store.store_answered(
            pg, raw, outcome_for(status), status, error[:4000], authenticated
        )
    elif not receipt.answered:
        try:
            await asyncio.shield(
                payload_store.finish_payload(
                    pg,
                    receipt.payload_id,
                    outcome_for(status),
                    status,
                    error[:4000],
                    authenticated,
                    channel_id,
                )
            )
        except Exception:
            log.exception(
                "could not record a payload outcome", extra={"payload_id": receipt.payload_id}
            )
    receipt.answered = True


async def purge_unauthenticated(
    db: Database, ttl_seconds: float = UNAUTHENTICATED_TTL_SECONDS, now: datetime | None = None
) -> int:
    """Delete answered, unauthenticated payloads older than the TTL; how many went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=ttl_seconds)
    return await payload_store.purge_unauthenticated(db, cutoff)


async def run_payload_purger(
    db: Database, ttl_seconds: float = UNAUTHENTICATED_TTL_SECONDS, interval_seconds: float = 60.0
) -> None:
    """Background task of every replica (the deletes are idempotent)."""
    while True:
        try:
            await purge_unauthenticated(db, ttl_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unauthenticated payload purge failed")
        await asyncio.sleep(interval_seconds)


async def load_payload(session: AsyncSession, payload_id: int) -> StoredPayload:
    found = await payload_store.load_payload(session, payload_id)
    if found is None:
        raise NotFound(f"payload {payload_id} not found")
    return found


async def list_payloads(
    session: AsyncSession, channel_id: str, outcome: str, before: int, limit: int
) -> list[StoredPayload]:
    return await payload_store.list_payloads(session, channel_id, outcome, before, limit)


async def find_order(
    session: AsyncSession, channel_id: str, channel_order_id: str
) -> AcceptedOrder:
    found = await order_store.find_order(session, channel_id, channel_order_id)
    if found is None:
        raise NotFound(f"order {channel_order_id} of channel {channel_id} not found")
    return found


async def find_order_by_id(session: AsyncSession, order_id: str) -> AcceptedOrder | None:
    return await order_store.find_order_by_id(session, order_id)


async def set_order_status(
    session: AsyncSession, order_id: str, status: str
) -> AcceptedOrder | None:
    """Move a channel order's status forward; events arriving late (ready for pickup after the
    voucher was consumed) never move it back. None when not ours or not a step forward."""
    return await order_store.set_status(session, order_id, status)


async def record_return(uow_factory: UnitOfWorkFactory, command: ReturnCommand) -> bool:
    """Remember a counter return the order service took (once per channel + return id)."""
    async with uow_factory() as uow:
        created = await order_store.insert_return(uow.session, command)
        await uow.commit()
    return created


def payload_json(payload: StoredPayload) -> object:
    return json.loads(payload.body)
