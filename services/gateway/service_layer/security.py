"""Authenticating a request (signature, replay window, nonce) and charging its rate limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from services.gateway.adapters.tables import rate_buckets, request_nonces
from services.gateway.domain import rate_limit
from services.gateway.domain.access import Caller
from services.gateway.domain.signatures import (
    REPLAY_WINDOW_SECONDS,
    SignatureError,
    SignedRequest,
    marketplace_request,
    parse_headers,
    verify,
    verify_marketplace,
)
from services.gateway.service_layer.channels import Channel, CredentialRow, find_channel, load_key

log = logging.getLogger(__name__)


class RateLimited(Exception):
    def __init__(self, retry_after: int, bucket: str) -> None:
        super().__init__(f"rate limit of {bucket}")
        self.retry_after = retry_after
        self.bucket = bucket


class ChannelSuspended(Exception):
    def __init__(self, channel_id: str) -> None:
        super().__init__(f"channel {channel_id} is suspended")
        self.channel_id = channel_id


async def _claim_nonce(session: AsyncSession, key_id: str, nonce: str) -> None:
    claimed = (
        await session.execute(
            insert(request_nonces)
            .values(key_id=key_id, nonce=nonce)
            .on_conflict_do_nothing()
            .returning(request_nonces.c.nonce)
        )
    ).first()
    if claimed is None:
        raise SignatureError("nonce already used")


async def _charge(session: AsyncSession, bucket: str, rate: int, burst: int, now: float) -> None:
    """Take one token from the shared bucket under its row lock (created full if new)."""
    await session.execute(
        insert(rate_buckets)
        .values(bucket_key=bucket, tokens=float(rate_limit.limits(rate, burst)[1]), updated_at=now)
        .on_conflict_do_nothing()
    )
    row = (
        await session.execute(
            sa.select(rate_buckets.c.tokens, rate_buckets.c.updated_at)
            .where(rate_buckets.c.bucket_key == bucket)
            .with_for_update()
        )
    ).one()
    decision = rate_limit.take(rate_limit.BucketState(row.tokens, row.updated_at), rate, burst, now)
    await session.execute(
        rate_buckets.update()
        .where(rate_buckets.c.bucket_key == bucket)
        .values(tokens=decision.state.tokens, updated_at=decision.state.updated_at)
    )
    if not decision.allowed:
        raise RateLimited(decision.retry_after, bucket)


def caller_of(cred: CredentialRow) -> Caller:
    return Caller(
        cred.key_id, cred.owner_kind, cred.owner_id, cred.channel_id, frozenset(cred.scopes)
    )


async def authenticate(
    db: Database,
    *,
    style: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now: float,
) -> tuple[Caller, Channel]:
    """Who is calling, proven by the signature; the nonce is claimed and a token taken in
    one transaction, so a refused request (rate, suspension) leaves neither behind.

    style: "omni" (our headers), "tmall" or "jd" (their query parameters). Marketplace
    schemes have no nonce: a marketplace re-sends the same signed push, so within the window
    a byte-identical request is let through; it is harmless because every marketplace route
    is idempotent by the marketplace's own id.
    """
    signed: SignedRequest = (
        parse_headers(headers) if style == "omni" else marketplace_request(style, query)
    )
    async with db.session() as session, session.begin():
        found = await load_key(session, signed.key_id)
        if found is None or found[0].revoked:
            raise SignatureError("unknown key")
        cred, secret = found
        if style == "omni":
            verify(secret, signed, method, path, body, now)
        else:
            verify_marketplace(style, secret, query, body, now)
        if style == "omni":
            await _claim_nonce(session, cred.key_id, signed.nonce)
        channel = await find_channel(session, cred.channel_id)
        if channel is None:
            raise SignatureError("unknown key")
        if channel.config.status != "active":
            raise ChannelSuspended(channel.config.channel_id)
        if cred.owner_kind == "partner" and (cred.rate_per_second or cred.burst):
            await _charge(session, f"key:{cred.key_id}", cred.rate_per_second, cred.burst, now)
        else:
            await _charge(
                session,
                f"channel:{channel.config.channel_id}",
                channel.config.rate_per_second,
                channel.config.burst,
                now,
            )
    return caller_of(cred), channel


async def purge_nonces(db: Database, now: datetime | None = None) -> int:
    """Nonces older than twice the window can never be replayed successfully (their
    timestamp is stale), so they are dropped."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=2 * REPLAY_WINDOW_SECONDS)
    async with db.session() as session, session.begin():
        result = await session.execute(
            request_nonces.delete().where(request_nonces.c.seen_at < cutoff)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def run_nonce_purger(db: Database, interval_seconds: float = 60.0) -> None:
    """Background task: keep request_nonces to about two replay windows of traffic."""
    while True:
        try:
            await purge_nonces(db)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("nonce purge failed")
        await asyncio.sleep(interval_seconds)
