"""Nonces and shared rate buckets: one statement each on plain asyncpg."""

from __future__ import annotations

from datetime import datetime

from libs.db import Database
from libs.pg import Pg
from services.gateway.adapters.tables import request_nonces
from services.gateway.domain.rate_limit import BucketState

# For requests that store no payload (the open API's reads): the nonce is claimed only if
# the key and its channel may still act. Returns key_ok, channel_status, claimed.
_CLAIM = """
WITH auth AS (
    SELECT coalesce((SELECT NOT revoked FROM credentials WHERE key_id = $1), false) AS key_ok,
           coalesce((SELECT status FROM channels WHERE channel_id = $2), '') AS channel_status
), nonce AS (
    INSERT INTO request_nonces (key_id, nonce)
    SELECT $1, $3 FROM auth WHERE $3 <> '' AND auth.key_ok AND auth.channel_status = 'active'
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT auth.key_ok, auth.channel_status, ($3 = '' OR EXISTS (SELECT 1 FROM nonce)) AS claimed
FROM auth
"""


async def claim(pg: Pg, key_id: str, channel_id: str, nonce: str) -> tuple[bool, str, bool]:
    async with pg.connection() as conn:
        row = await conn.fetchrow(_CLAIM, key_id, channel_id, nonce)
    assert row is not None
    return bool(row["key_ok"]), str(row["channel_status"]), bool(row["claimed"])


# The bucket's row is locked by the CTE (FOR UPDATE returns the latest committed version),
# refilled and charged in the same statement: one round trip per lease, however many
# replicas lease at once. $1 bucket, $2 rate, $3 burst, $4 now, $5 tokens wanted.
_LEASE = """
WITH cur AS (
    SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = $1 FOR UPDATE
), refilled AS (
    SELECT LEAST($3::float8, tokens + GREATEST(0, $4::float8 - updated_at) * $2::float8) AS avail,
           GREATEST(updated_at, $4::float8) AS at
    FROM cur
), grant_ AS (
    SELECT avail, at, LEAST(floor(avail), $5::float8)::int AS granted FROM refilled
)
UPDATE rate_buckets b
SET tokens = g.avail - GREATEST(g.granted, 0), updated_at = g.at
FROM grant_ g
WHERE b.bucket_key = $1
RETURNING GREATEST(g.granted, 0) AS granted, g.avail AS avail
"""

_CREATE = """
INSERT INTO rate_buckets (bucket_key, tokens, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (bucket_key) DO NOTHING
"""


async def lease(
    pg: Pg, bucket: str, rate: int, burst: int, now: float, want: int
) -> tuple[int, BucketState]:
    """Take up to ``want`` tokens from the shared bucket (created full when new): how many
    were granted and the bucket as it was left."""
    async with pg.connection() as conn:
        row = await conn.fetchrow(_LEASE, bucket, rate, burst, now, want)
        if row is None:
            await conn.execute(_CREATE, bucket, float(burst), now)
            row = await conn.fetchrow(_LEASE, bucket, rate, burst, now, want)
    assert row is not None
    granted = int(row["granted"])
    return granted, BucketState(float(row["avail"]) - granted, now)


async def purge_nonces(db: Database, cutoff: datetime) -> int:
    async with db.session() as session, session.begin():
        result = await session.execute(
            request_nonces.delete().where(request_nonces.c.seen_at < cutoff)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
