"""Inbound guarantees: the raw payload is stored first, in its own transaction; a channel
order is accepted once per (channel, channel order id) whatever the retries."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from omni.order.v1 import order_pb2
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from libs.errors import NotFound
from libs.unit_of_work import UnitOfWorkFactory
from services.gateway import metrics
from services.gateway.adapters.tables import channel_orders, channel_returns, inbound_payloads
from services.gateway.connectors.pos import ReturnCommand
from services.gateway.domain.channels import CONNECTOR_KIND

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


# Where a channel order is in its life, as the channel sees it; a status only moves forward.
STATUS_RANK = {
    "accepted": 0,
    "shipped": 1,
    "ready_for_pickup": 1,
    "consumed": 2,
    "completed": 3,
    "returned": 4,
    "cancelled": 4,
}


def later_than(status: str) -> list[str]:
    rank = STATUS_RANK.get(status, 0)
    return [s for s, r in STATUS_RANK.items() if r > rank]


@dataclass(frozen=True)
class StoredPayload:
    payload_id: int
    channel_id: str
    route: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    outcome: str
    http_status: int
    error: str


@dataclass(frozen=True)
class AcceptedOrder:
    channel_id: str
    channel_order_id: str
    order_id: str
    order: order_pb2.Order
    partner_id: str
    status: str
    accepted_at: datetime
    created: bool


async def store_payload(
    db: Database,
    channel_id: str,
    route: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
) -> int:
    """Committed before anything looks at the payload, so even a request that crashes the
    handler can be audited and replayed."""
    async with db.session() as session, session.begin():
        payload_id = (
            await session.execute(
                inbound_payloads.insert()
                .values(
                    channel_id=channel_id,
                    route=route,
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                )
                .returning(inbound_payloads.c.payload_id)
            )
        ).scalar_one()
    return int(payload_id)


def outcome_for(status: int) -> str:
    if status < 400:
        return "accepted"
    return "rejected" if status < 500 else "failed"


def result_for(status: int, duplicate: bool) -> str:
    """accepted | duplicate | rejected | failed (the label of INBOUND_PAYLOADS)."""
    outcome = outcome_for(status)
    return "duplicate" if outcome == "accepted" and duplicate else outcome


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


# A payload whose sender never proved who it is (bad signature, unknown key or route) is
# kept for inspection, but bounded: its body cut to this many bytes, and the row deleted
# after UNAUTHENTICATED_TTL_SECONDS — so a flood of forged requests cannot grow the table
# without limit. Authenticated payloads (and any still "received", i.e. interrupted) are
# kept whole and never purged.
UNAUTHENTICATED_BODY_BYTES = 4096
UNAUTHENTICATED_TTL_SECONDS = 86_400.0


async def finish_payload(
    db: Database,
    payload_id: int,
    status: int,
    error: str,
    channel_id: str | None = None,
    *,
    authenticated: bool | None = None,
) -> None:
    """Record the answer. ``authenticated`` defaults to whether the channel was known
    (``channel_id`` is passed only once the signature checked out)."""
    values: dict[str, object] = {
        "outcome": outcome_for(status),
        "http_status": status,
        "error": error[:4000],
        "authenticated": bool(channel_id) if authenticated is None else authenticated,
    }
    if not values["authenticated"]:
        values["body"] = sa.func.substring(inbound_payloads.c.body, 1, UNAUTHENTICATED_BODY_BYTES)
    if channel_id:
        values["channel_id"] = channel_id
    async with db.session() as session, session.begin():
        await session.execute(
            inbound_payloads.update()
            .where(inbound_payloads.c.payload_id == payload_id)
            .values(**values)
        )
    metrics.INBOUND_OUTCOMES.labels(outcome=outcome_for(status)).inc()


async def purge_unauthenticated(
    db: Database, ttl_seconds: float = UNAUTHENTICATED_TTL_SECONDS, now: datetime | None = None
) -> int:
    """Delete answered, unauthenticated payloads older than the TTL; how many went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=ttl_seconds)
    async with db.session() as session, session.begin():
        result = await session.execute(
            inbound_payloads.delete().where(
                inbound_payloads.c.authenticated.is_(False),
                inbound_payloads.c.outcome != "received",
                inbound_payloads.c.received_at < cutoff,
            )
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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


def _payload(row: sa.Row[tuple[object, ...]]) -> StoredPayload:
    m = row._mapping
    return StoredPayload(
        m["payload_id"],
        m["channel_id"],
        m["route"],
        m["method"],
        m["path"],
        dict(m["headers"]),
        bytes(m["body"]),
        m["received_at"],
        m["outcome"],
        m["http_status"],
        m["error"],
    )


async def load_payload(session: AsyncSession, payload_id: int) -> StoredPayload:
    row = (
        await session.execute(
            sa.select(inbound_payloads).where(inbound_payloads.c.payload_id == payload_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"payload {payload_id} not found")
    return _payload(row)


async def list_payloads(
    session: AsyncSession, channel_id: str, outcome: str, before: int, limit: int
) -> list[StoredPayload]:
    query = sa.select(inbound_payloads)
    if channel_id:
        query = query.where(inbound_payloads.c.channel_id == channel_id)
    if outcome:
        query = query.where(inbound_payloads.c.outcome == outcome)
    if before:
        query = query.where(inbound_payloads.c.payload_id < before)
    rows = await session.execute(query.order_by(inbound_payloads.c.payload_id.desc()).limit(limit))
    return [_payload(r) for r in rows]


def accepted_from_row(row: sa.Row[tuple[object, ...]], created: bool) -> AcceptedOrder:
    m = row._mapping
    order = order_pb2.Order()
    order.ParseFromString(m["order_proto"])
    return AcceptedOrder(
        m["channel_id"],
        m["channel_order_id"],
        m["order_id"],
        order,
        m["partner_id"],
        m["status"],
        m["accepted_at"],
        created,
    )


async def accept_order(
    uow_factory: UnitOfWorkFactory,
    order: order_pb2.Order,
    payload_id: int | None,
    partner_id: str = "",
    voucher_code_sha256: str = "",
) -> AcceptedOrder:
    """Once per (channel, channel order id): the first payload wins, every retry (or a
    replay) gets the same order id back with ``created`` False. ``order.order_id`` is the
    platform's (from the order service)."""
    order_id = order.order_id or f"o-{uuid.uuid4().hex}"
    order.order_id = order_id
    async with uow_factory() as uow:
        row = (
            await uow.session.execute(
                insert(channel_orders)
                .values(
                    channel_id=order.channel_id,
                    channel_order_id=order.channel_order_id,
                    order_id=order_id,
                    order_proto=order.SerializeToString(deterministic=True),
                    partner_id=partner_id,
                    status="accepted",
                    payload_id=payload_id,
                    voucher_code_sha256=voucher_code_sha256,
                )
                .on_conflict_do_nothing(index_elements=["channel_id", "channel_order_id"])
                .returning(*channel_orders.c)
            )
        ).first()
        created = row is not None
        if row is None:
            row = (
                await uow.session.execute(
                    sa.select(channel_orders).where(
                        channel_orders.c.channel_id == order.channel_id,
                        channel_orders.c.channel_order_id == order.channel_order_id,
                    )
                )
            ).one()
        await uow.commit()
    kind = order_pb2.ChannelKind.Name(order.channel_kind).removeprefix("CHANNEL_KIND_").lower()
    metrics.ORDERS.labels(channel_kind=kind, outcome="accepted" if created else "duplicate").inc()
    return accepted_from_row(row, created)


async def find_order_or_none(
    session: AsyncSession, channel_id: str, channel_order_id: str
) -> AcceptedOrder | None:
    row = (
        await session.execute(
            sa.select(channel_orders).where(
                channel_orders.c.channel_id == channel_id,
                channel_orders.c.channel_order_id == channel_order_id,
            )
        )
    ).first()
    return None if row is None else accepted_from_row(row, False)


async def find_order(
    session: AsyncSession, channel_id: str, channel_order_id: str
) -> AcceptedOrder:
    row = (
        await session.execute(
            sa.select(channel_orders).where(
                channel_orders.c.channel_id == channel_id,
                channel_orders.c.channel_order_id == channel_order_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"order {channel_order_id} of channel {channel_id} not found")
    return accepted_from_row(row, False)


async def find_order_by_id(session: AsyncSession, order_id: str) -> AcceptedOrder | None:
    row = (
        await session.execute(
            sa.select(channel_orders).where(channel_orders.c.order_id == order_id)
        )
    ).first()
    return None if row is None else accepted_from_row(row, False)


async def set_order_status(
    session: AsyncSession, order_id: str, status: str
) -> AcceptedOrder | None:
    """Move a channel order's status forward; events arriving late (ready for pickup after the
    voucher was consumed) never move it back. None when not ours or not a step forward."""
    row = (
        await session.execute(
            channel_orders.update()
            .where(
                channel_orders.c.order_id == order_id,
                channel_orders.c.status.notin_(later_than(status)),
            )
            .values(status=status, updated_at=sa.func.now())
            .returning(*channel_orders.c)
        )
    ).first()
    return None if row is None else accepted_from_row(row, False)


async def record_return(uow_factory: UnitOfWorkFactory, command: ReturnCommand) -> bool:
    """Remember a counter return the order service took (once per channel + return id)."""
    async with uow_factory() as uow:
        row = (
            await uow.session.execute(
                insert(channel_returns)
                .values(
                    channel_id=command.channel_id,
                    return_id=command.return_id,
                    order_id=command.order_id,
                    receiving_location_id=command.receiving_location_id,
                    lines=[
                        {"line_id": line_id, "quantity": quantity, "resaleable": resaleable}
                        for line_id, quantity, resaleable in command.lines
                    ],
                )
                .on_conflict_do_nothing()
                .returning(channel_returns.c.return_id)
            )
        ).first()
        await uow.commit()
    return row is not None


def payload_json(payload: StoredPayload) -> object:
    return json.loads(payload.body)
