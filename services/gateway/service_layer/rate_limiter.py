"""Rate limits without a hot row per request: each replica leases tokens from the shared
bucket in PostgreSQL in chunks (``domain.rate_limit.lease_size``) and spends them locally.

The shared bucket stays the one authority, so the limit is global across replicas: every
token spent was granted by the bucket, so over any window the replicas together admit at
most what the bucket granted, i.e. burst + rate x window. Leased tokens are spent within
``LEASE_TTL_SECONDS`` or dropped, so a grant can be used at most that much later than it was
made (tolerance: N replicas x one lease, shifted by up to one second); dropped tokens only
make the limit stricter. A small bucket (burst < 20) leases one token at a time, i.e. the
old exact behaviour, one round trip per request.
"""

from __future__ import annotations

import asyncio

from libs.pg import Pg
from services.gateway.adapters import security_store
from services.gateway.domain import rate_limit


class RateLimited(Exception):
    def __init__(self, retry_after: int, bucket: str) -> None:
        super().__init__(f"rate limit of {bucket}")
        self.retry_after = retry_after
        self.bucket = bucket


class RateLimiter:
    def __init__(self, pg: Pg) -> None:
        self.pg = pg
        self._leases: dict[str, rate_limit.LocalLease] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def charge(self, bucket: str, rate: int, burst: int, now: float) -> None:
        """Take one token, from the local lease if it holds one, else lease a chunk (one
        round trip; concurrent requests of the bucket wait for the same lease)."""
        lease = self._leases.setdefault(bucket, rate_limit.LocalLease())
        if lease.take(now):
            return
        lock = self._locks.setdefault(bucket, asyncio.Lock())
        async with lock:
            if lease.take(now):
                return
            rate, burst = rate_limit.limits(rate, burst)
            want = rate_limit.lease_size(rate, burst)
            granted, state = await security_store.lease(self.pg, bucket, rate, burst, now, want)
            lease.refill(granted, now)
            if not lease.take(now):
                raise RateLimited(rate_limit.retry_after(state.tokens, rate, burst), bucket)
