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
