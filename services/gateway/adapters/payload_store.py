"""Raw inbound payloads (``inbound_payloads``) and the statement that opens an inbound
request: store the payload, claim the nonce, re-check the key and the channel, and find the
channel order a retry refers to — one round trip on plain asyncpg. Cold reads (ListPayloads,
ReplayPayload) and the purger use SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from libs.pg import Pg
from services.gateway.adapters.tables import inbound_payloads
from services.gateway.domain.inbound import UNAUTHENTICATED_BODY_BYTES, StoredPayload


@dataclass(frozen=True)
class RawPayload:
    channel_id: str
    route: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Opened:
    """What the opening statement found."""

    payload_id: int
    # The key exists and is not revoked; its channel's status; the nonce was claimed (or
    # none was needed). ``admitted`` is all three.
    key_ok: bool
    channel_status: str
    admitted: bool
    # The channel order already accepted under this id (a retry or a replay), if any: its
    # payload's answer (200 duplicate) was recorded by the same statement.
    order_id: str | None
    partner_id: str
    status: str


# $1 key id, $2 channel id (the key's), $3 nonce ('' = none to claim), $4 route, $5 method,
# $6 path, $7 headers, $8 body, $9 channel order id ('' = not an order route).
_OPEN = """
WITH auth AS (
    SELECT coalesce((SELECT NOT revoked FROM credentials WHERE key_id = $1), false) AS key_ok,
           coalesce((SELECT status FROM channels WHERE channel_id = $2), '') AS channel_status
), nonce AS (
    INSERT INTO request_nonces (key_id, nonce)
    SELECT $1, $3 FROM auth WHERE $3 <> '' AND auth.key_ok AND auth.channel_status = 'active'
    ON CONFLICT DO NOTHING
    RETURNING 1
), verdict AS (
    SELECT auth.key_ok AND auth.channel_status = 'active'
           AND ($3 = '' OR EXISTS (SELECT 1 FROM nonce)) AS admitted
    FROM auth
), existing AS (
    SELECT order_id, partner_id, status FROM channel_orders
    WHERE $9 <> '' AND channel_id = $2 AND channel_order_id = $9
), payload AS (
    INSERT INTO inbound_payloads
        (channel_id, route, method, path, headers, body, outcome, http_status, authenticated)
    SELECT $2, $4, $5, $6, $7, $8,
           CASE WHEN v.admitted AND e.order_id IS NOT NULL THEN 'accepted' ELSE 'received' END,
           CASE WHEN v.admitted AND e.order_id IS NOT NULL THEN 200 ELSE 0 END,
           v.admitted AND e.order_id IS NOT NULL
    FROM verdict v LEFT JOIN existing e ON true
    RETURNING payload_id
)
SELECT p.payload_id, a.key_ok, a.channel_status, v.admitted, e.order_id, e.partner_id, e.status
FROM payload p CROSS JOIN auth a CROSS JOIN verdict v LEFT JOIN existing e ON true
"""


async def open_payload(
    pg: Pg, raw: RawPayload, key_id: str, channel_id: str, nonce: str, channel_order_id: str
) -> Opened:
    """Store the payload (committed by this statement, before anything acts on it, under
    the key's channel), claim the nonce only if the key and channel may still act, and look
    up the channel order."""
    async with pg.connection() as conn:
        row = await conn.fetchrow(
            _OPEN,
            key_id,
            channel_id,
            nonce,
            raw.route,
            raw.method,
            raw.path,
            raw.headers,
            raw.body,
            channel_order_id,
        )
    assert row is not None
    found = row["order_id"] is not None and row["admitted"]
    return Opened(
        int(row["payload_id"]),
        bool(row["key_ok"]),
        str(row["channel_status"]),
        bool(row["admitted"]),
        row["order_id"] if found else None,
        row["partner_id"] or "",
        row["status"] or "",
    )


_STORE_ANSWERED = """
INSERT INTO inbound_payloads
    (channel_id, route, method, path, headers, body, outcome, http_status, error, authenticated)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING payload_id
"""


async def store_answered(
    pg: Pg, raw: RawPayload, outcome: str, status: int, error: str, authenticated: bool
) -> int:
    """A payload refused before it was opened (bad input, signature, rate limit, a busy
    platform): stored with its answer in one statement; unauthenticated bodies cut short."""
    body = raw.body if authenticated else raw.body[:UNAUTHENTICATED_BODY_BYTES]
    async with pg.connection() as conn:
        payload_id = await conn.fetchval(
            _STORE_ANSWERED,
            raw.channel_id,
            raw.route,
            raw.method,
            raw.path,
            raw.headers,
            body,
            outcome,
            status,
            error,
            authenticated,
        )
    return int(payload_id)


_FINISH = """
UPDATE inbound_payloads
SET outcome = $2, http_status = $3, error = $4, authenticated = $5,
    channel_id = CASE WHEN $6 = '' THEN channel_id ELSE $6 END,
    body = CASE WHEN $5 THEN body ELSE substring(body FROM 1 FOR $7) END
WHERE payload_id = $1
"""


async def finish_payload(
    pg: Pg,
    payload_id: int,
    outcome: str,
    status: int,
    error: str,
    authenticated: bool,
    channel_id: str,
) -> None:
    async with pg.connection() as conn:
        await conn.execute(
            _FINISH,
            payload_id,
            outcome,
            status,
            error,
            authenticated,
            channel_id,
            UNAUTHENTICATED_BODY_BYTES,
        )


def payload_of(m: Any) -> StoredPayload:
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


async def load_payload(session: AsyncSession, payload_id: int) -> StoredPayload | None:
    row = (
        await session.execute(
            sa.select(inbound_payloads).where(inbound_payloads.c.payload_id == payload_id)
        )
    ).first()
    return None if row is None else payload_of(row._mapping)


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
    return [payload_of(r._mapping) for r in rows]


async def purge_unauthenticated(db: Database, cutoff: datetime) -> int:
    """Delete answered, unauthenticated payloads received before ``cutoff``."""
    async with db.session() as session, session.begin():
        result = await session.execute(
            inbound_payloads.delete().where(
                inbound_payloads.c.authenticated.is_(False),
                inbound_payloads.c.outcome != "received",
                inbound_payloads.c.received_at < cutoff,
            )
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
