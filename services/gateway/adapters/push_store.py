"""The outbound push queue on a plain asyncpg connection: what the channel-sync consumer and
the pusher do many times a second, each one set-based statement for a whole batch."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from libs.columns import columns
from services.gateway.domain.pushes import PushRequest, PushRow

_PUSH_COLUMNS = """push_id, channel_id, kind, subject, facts::text AS facts, version, status,
attempts, last_error, event_time, next_attempt_at, trace_context::text AS trace_context"""

_CHANNELS_BY_STOCK = """
SELECT stock_channel, channel_id FROM channels
WHERE status = 'active' AND push_endpoint <> '' AND stock_channel = ANY($1::text[])
ORDER BY channel_id
"""

_PUSHING_CHANNELS = """
SELECT channel_id FROM channels
WHERE status = 'active' AND push_endpoint <> ''
  AND ($1::text[] IS NULL OR channel_id = ANY($1::text[]))
ORDER BY channel_id
"""

# One pending push per (channel, kind, subject): a change for a key already pending bumps
# its version (an in-flight older version is then sent again) and keeps the oldest event
# time and that first event's trace context.
_ENQUEUE = """
INSERT INTO outbound_pushes AS p (channel_id, kind, subject, facts, event_time, trace_context)
SELECT u.channel_id, u.kind, u.subject, u.facts::jsonb, u.event_time, u.trace_context::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
     WITH ORDINALITY AS u(channel_id, kind, subject, facts, event_time, trace_context, n)
ORDER BY u.n
ON CONFLICT (channel_id, kind, subject) WHERE status = 'pending'
DO UPDATE SET version = p.version + 1, facts = EXCLUDED.facts,
              event_time = least(p.event_time, EXCLUDED.event_time)
"""

# SKIP LOCKED lets several replicas share the queue without waiting; the lease keeps a row
# from being sent twice at once while the HTTP call runs outside any transaction.
_CLAIM_DUE = f"""
UPDATE outbound_pushes SET lease_until = now() + $2::interval
WHERE push_id IN (
    SELECT push_id FROM outbound_pushes
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING {_PUSH_COLUMNS}
"""

_CHANNELS = """
SELECT channel_id, connector, status, push_endpoint, stock_channel FROM channels
WHERE channel_id = ANY($1::text[])
"""

# Only the version that was sent is done; a push whose row was bumped meanwhile (a change
# coalesced into it) goes again at once with the newer figure.
_ACKNOWLEDGED = """
WITH sent AS (
    SELECT * FROM unnest($1::bigint[], $2::int[]) AS s(push_id, version)
), done AS (
    UPDATE outbound_pushes AS p
    SET status = 'delivered', delivered_at = $3, lease_until = NULL, last_error = ''
    FROM sent WHERE p.push_id = sent.push_id AND p.version = sent.version
    RETURNING p.push_id
)
UPDATE outbound_pushes AS p SET lease_until = NULL, next_attempt_at = $3
FROM sent WHERE p.push_id = sent.push_id AND p.push_id NOT IN (SELECT push_id FROM done)
"""

_FAILED = """
UPDATE outbound_pushes AS p
SET attempts = f.attempts, last_error = f.last_error, lease_until = NULL,
    status = CASE WHEN f.retry_at IS NULL THEN 'dead' ELSE p.status END,
    next_attempt_at = coalesce(f.retry_at, p.next_attempt_at)
FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[])
     AS f(push_id, attempts, last_error, retry_at)
WHERE p.push_id = f.push_id
"""

# Per channel, the oldest change it has not acknowledged: a pending push, or a dead one that
# no later delivered push of the same subject superseded.
_OLDEST_UNACKNOWLEDGED = """
SELECT p.channel_id, min(p.event_time) AS oldest FROM outbound_pushes AS p
WHERE p.status IN ('pending', 'dead')
  AND (p.status = 'pending' OR NOT EXISTS (
        SELECT 1 FROM outbound_pushes AS later
        WHERE later.channel_id = p.channel_id AND later.kind = p.kind
          AND later.subject = p.subject AND later.status = 'delivered'
          AND later.push_id > p.push_id))
GROUP BY p.channel_id
"""


def push_row(row: Any) -> PushRow:
    return PushRow(
        push_id=row["push_id"],
        channel_id=row["channel_id"],
        kind=row["kind"],
        subject=row["subject"],
        facts=json.loads(row["facts"]),
        version=row["version"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        event_time=row["event_time"],
        next_attempt_at=row["next_attempt_at"],
        trace_context=json.loads(row["trace_context"] or "{}"),
    )


class PgPushStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def channels_by_stock(self, stock_channels: Collection[str]) -> dict[str, list[str]]:
        """Active channels with an endpoint, by the stock channel whose ATP they show."""
        found: dict[str, list[str]] = {}
        if stock_channels:
            for r in await self.conn.fetch(_CHANNELS_BY_STOCK, sorted(set(stock_channels))):
                found.setdefault(r["stock_channel"], []).append(r["channel_id"])
        return found

    async def pushing_channels(self, channel_ids: Collection[str] | None = None) -> list[str]:
        """Active channels with an endpoint: all of them, or those of ``channel_ids``."""
        wanted = None if channel_ids is None else sorted(set(channel_ids))
        return [r["channel_id"] for r in await self.conn.fetch(_PUSHING_CHANNELS, wanted)]

    async def enqueue(self, requests: Sequence[PushRequest]) -> None:
        """Queue (or coalesce into the pending push) each request; ``requests`` must hold
        one per (channel, kind, subject) (domain/pushes.coalesce)."""
        if requests:
            await self.conn.execute(
                _ENQUEUE,
                *columns(
                    requests,
                    lambda r: r.channel_id,
                    lambda r: r.kind,
                    lambda r: r.subject,
                    lambda r: json.dumps(r.facts),
                    lambda r: r.event_time,
                    lambda r: json.dumps(dict(r.trace_context)),
                ),
            )

    async def claim_due(self, limit: int, lease_seconds: float) -> list[PushRow]:
        rows = await self.conn.fetch(_CLAIM_DUE, limit, timedelta(seconds=lease_seconds))
        return [push_row(r) for r in rows]

    async def channels(self, channel_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        rows = await self.conn.fetch(_CHANNELS, sorted(set(channel_ids)))
        return {r["channel_id"]: dict(r) for r in rows}

    async def acknowledged(self, rows: Sequence[PushRow], at: datetime) -> None:
        if rows:
            await self.conn.execute(
                _ACKNOWLEDGED,
                *columns(rows, lambda r: r.push_id, lambda r: r.version),
                at,
            )

    async def failed(self, failures: Sequence[tuple[PushRow, int, str, datetime | None]]) -> None:
        """(row, attempts so far, error, when to retry — None: it is dead)."""
        if failures:
            await self.conn.execute(
                _FAILED,
                *columns(
                    failures,
                    lambda f: f[0].push_id,
                    lambda f: f[1],
                    lambda f: f[2],
                    lambda f: f[3],
                ),
            )

    async def oldest_unacknowledged(self) -> dict[str, datetime]:
        return {r["channel_id"]: r["oldest"] for r in await self.conn.fetch(_OLDEST_UNACKNOWLEDGED)}
