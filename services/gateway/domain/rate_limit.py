"""The token bucket behind per-channel and per-key rate limits.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request
takes one. The state (tokens, last refill) lives in PostgreSQL and is updated under a row
lock, so every gateway replica draws from the same bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_RATE_PER_SECOND = 50
DEFAULT_BURST = 100


@dataclass(frozen=True)
class BucketState:
    tokens: float
    updated_at: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    state: BucketState
    # Whole seconds until one token is back (the Retry-After header); 0 when allowed.
    retry_after: int


def limits(rate: int, burst: int) -> tuple[int, int]:
    """A zero or negative setting means the default."""
    rate = rate if rate > 0 else DEFAULT_RATE_PER_SECOND
    burst = burst if burst > 0 else max(DEFAULT_BURST, rate)
    return rate, burst


def take(state: BucketState | None, rate: int, burst: int, now: float) -> Decision:
    """Refill for the time elapsed (never above burst; a clock going back refills nothing),
    then take one token if there is one."""
    rate, burst = limits(rate, burst)
    if state is None:
        tokens = float(burst)
    else:
        elapsed = max(0.0, now - state.updated_at)
        tokens = min(float(burst), state.tokens + elapsed * rate)
    if tokens >= 1.0:
        return Decision(True, BucketState(tokens - 1.0, now), 0)
    wait = (1.0 - tokens) / rate
    return Decision(False, BucketState(tokens, now), max(1, math.ceil(wait)))


# Leases: a replica takes tokens from the shared bucket in chunks and spends them locally, so
# a busy channel costs one database round trip per chunk instead of per request.
LEASE_SECONDS = 0.05
MAX_LEASE = 50
# Tokens leased and not spent within this time are dropped: a replica cannot hoard a burst
# and spend it later (the limit stays global, see README "Rate limits").
LEASE_TTL_SECONDS = 1.0


def lease_size(rate: int, burst: int) -> int:
    """How many tokens a replica asks for at once: about ``LEASE_SECONDS`` of the rate, at
    most a tenth of the burst (so one replica cannot drain a small bucket for the others),
    at most ``MAX_LEASE``, at least one."""
    rate, burst = limits(rate, burst)
    return max(1, min(math.ceil(rate * LEASE_SECONDS), burst // 10, MAX_LEASE))


@dataclass
class LocalLease:
    """Tokens a replica holds from the shared bucket: spent one per request without I/O,
    dropped when older than ``LEASE_TTL_SECONDS``."""

    tokens: int = 0
    expires_at: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens >= 1 and now < self.expires_at:
            self.tokens -= 1
            return True
        return False

    def refill(self, granted: int, now: float) -> None:
        self.tokens = granted
        self.expires_at = now + LEASE_TTL_SECONDS


def retry_after(tokens: float, rate: int, burst: int) -> int:
    """Whole seconds until the shared bucket holds one token again."""
    rate, _ = limits(rate, burst)
    return max(1, math.ceil((1.0 - tokens) / rate))
