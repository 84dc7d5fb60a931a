"""Outbound push rules: when to try again, when to give up, how lag is measured, and how
changes coalesce into one pending push per channel and subject."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

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


@dataclass(frozen=True)
class PushRequest:
    """A change a channel must hear about: queued as (or coalesced into) its pending push."""

    channel_id: str
    kind: str
    subject: str
    facts: dict[str, Any]
    event_time: datetime
    # The W3C trace context of the event that caused it: the push joins that trace.
    trace_context: Mapping[str, str]


def coalesce(requests: Iterable[PushRequest]) -> list[PushRequest]:
    """One request per (channel, kind, subject), as the queue keeps one pending push per
    key: the latest facts, the oldest event time (lag counts from the first change the
    channel has not seen) and that first change's trace context. Sorted by key, so
    concurrent writers lock queue rows in one order."""
    latest: dict[tuple[str, str, str], PushRequest] = {}
    oldest: dict[tuple[str, str, str], PushRequest] = {}
    for request in requests:
        key = (request.channel_id, request.kind, request.subject)
        latest[key] = request
        known = oldest.get(key)
        if known is None or request.event_time < known.event_time:
            oldest[key] = request
    merged = []
    for key in sorted(latest):
        last, first = latest[key], oldest[key]
        if first is not last:
            last = replace(last, event_time=first.event_time, trace_context=first.trace_context)
        merged.append(last)
    return merged


@dataclass(frozen=True)
class PushRow:
    """A queued push as stored."""

    push_id: int
    channel_id: str
    kind: str
    subject: str
    facts: dict[str, Any]
    version: int
    status: str
    attempts: int
    last_error: str
    event_time: datetime
    next_attempt_at: datetime
    trace_context: dict[str, str]
