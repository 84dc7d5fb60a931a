"""Authenticating a request (signature, replay window, nonce, revoked key, suspended
channel) and charging its rate limit.

The signature is checked in process against the cached key (service_layer/directory.py)
and the token comes from the replica's lease (service_layer/rate_limiter.py), so neither
costs a round trip. What must be decided by the database — is the nonce new, is the key
still valid, is the channel still active — is decided by the statement the request runs
anyway: the one that stores its payload (POST) or claims its nonce (a read). So a refused
request (signature, rate limit, suspension) leaves no nonce behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from libs.db import Database
from libs.pg import Pg
from services.gateway.adapters import security_store
from services.gateway.domain.access import Caller
from services.gateway.domain.channels import Channel, CredentialRow
from services.gateway.domain.signatures import (
    REPLAY_WINDOW_SECONDS,
    SignatureError,
    SignedRequest,
    marketplace_request,
    parse_headers,
    verify,
    verify_marketplace,
)
from services.gateway.service_layer.directory import Directory
from services.gateway.service_layer.rate_limiter import RateLimited, RateLimiter

log = logging.getLogger(__name__)

__all__ = ["Authenticated", "ChannelSuspended", "RateLimited", "authenticate", "caller_of"]


class ChannelSuspended(Exception):
    def __init__(self, channel_id: str) -> None:
        super().__init__(f"channel {channel_id} is suspended")
        self.channel_id = channel_id


@dataclass(frozen=True)
class Authenticated:
    """A request whose signature checked out; ``nonce`` is still to be claimed (with the
    payload's store, or by ``confirm``)."""

    caller: Caller
    channel: Channel
    nonce: str


def caller_of(cred: CredentialRow) -> Caller:
    return Caller(
        cred.key_id, cred.owner_kind, cred.owner_id, cred.channel_id, frozenset(cred.scopes)
    )


async def authenticate(
    directory: Directory,
    limiter: RateLimiter,
    *,
    style: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now: float,
) -> Authenticated:
    """Who is calling, proven by the signature, and one token of its rate limit.

    style: "omni" (our headers), "tmall" or "jd" (their query parameters). Marketplace
    schemes have no nonce: a marketplace re-sends the same signed push, so within the window
    a byte-identical request is let through; it is harmless because every marketplace route
    is idempotent by the marketplace's own id.
    """
    signed: SignedRequest = (
        parse_headers(headers) if style == "omni" else marketplace_request(style, query)
    )
    known = await directory.key(signed.key_id)
    if known is None or known.credential.revoked:
        raise SignatureError("unknown key")
    cred, channel = known.credential, known.channel
    if style == "omni":
        verify(known.secret, signed, method, path, body, now)
    else:
        verify_marketplace(style, known.secret, query, body, now)
    if channel.config.status != "active":
        raise ChannelSuspended(channel.config.channel_id)
    if cred.owner_kind == "partner" and (cred.rate_per_second or cred.burst):
        await limiter.charge(f"key:{cred.key_id}", cred.rate_per_second, cred.burst, now)
    else:
        await limiter.charge(
            f"channel:{channel.config.channel_id}",
            channel.config.rate_per_second,
            channel.config.burst,
            now,
        )
    return Authenticated(caller_of(cred), channel, signed.nonce if style == "omni" else "")


def check_verdict(
    directory: Directory, auth: Authenticated, key_ok: bool, channel_status: str, claimed: bool
) -> None:
    """The database's word on a request the cache let through: a revoked key or a
    suspended channel is forgotten by the cache and refused; a used nonce is a replay."""
    if not key_ok:
        directory.forget_key(auth.caller.key_id)
        raise SignatureError("unknown key")
    if channel_status != "active":
        directory.forget_key(auth.caller.key_id)
        raise ChannelSuspended(auth.channel.config.channel_id)
    if not claimed:
        raise SignatureError("nonce already used")


async def confirm(pg: Pg, directory: Directory, auth: Authenticated) -> None:
    """For a request that stores no payload (a read): claim its nonce, re-check the key and
    the channel, in one statement."""
    key_ok, status, claimed = await security_store.claim(
        pg, auth.caller.key_id, auth.channel.config.channel_id, auth.nonce
    )
    check_verdict(directory, auth, key_ok, status, claimed)


async def purge_nonces(db: Database, now: datetime | None = None) -> int:
    """Nonces older than twice the window can never be replayed successfully (their
    timestamp is stale), so they are dropped."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=2 * REPLAY_WINDOW_SECONDS)
    return await security_store.purge_nonces(db, cutoff)


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
