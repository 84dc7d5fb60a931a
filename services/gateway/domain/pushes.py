"""Outbound push rules: when to try again, when to give up, and how lag is measured."""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 300.0


def backoff(
    attempts: int, base: float = BASE_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS
) -> float:
    """Seconds to wait after the ``attempts``-th failure: base * 2^(attempts-1), capped."""
    if attempts < 1:
        return 0.0
    return min(cap, base * (2 ** min(attempts - 1, 30)))


def after_failure(
    attempts: int, now: datetime, max_attempts: int = MAX_ATTEMPTS, base: float = BASE_DELAY_SECONDS
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None: dead-letter it."""
    if attempts >= max_attempts:
        return None
    return now + timedelta(seconds=backoff(attempts, base))


def lag_seconds(event_time: datetime, acknowledged_at: datetime) -> float:
    """Event time → acknowledged push; never negative (clocks of two hosts may differ)."""
    return max(0.0, (acknowledged_at - event_time).total_seconds())
