"""The gateway's business metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Dashboards and alerts (deploy/) are built on these exact names and labels.
INBOUND_PAYLOADS = Counter(
    "omni_gateway_inbound_payloads_total",
    "Inbound payloads (stored raw) by channel kind, route and result: accepted (first "
    "time), duplicate (a retry answered from what was already accepted), rejected (4xx), "
    "failed (5xx)",
    ["channel_kind", "route", "result"],
)
INBOUND_OUTCOMES = Counter(
    "omni_gateway_inbound_outcomes_total",
    "Inbound payloads by outcome (accepted, rejected 4xx, failed 5xx)",
    ["outcome"],
)
ORDERS = Counter(
    "omni_gateway_channel_orders_total",
    "Channel orders by channel kind: accepted the first time or recognised as a duplicate",
    ["channel_kind", "outcome"],
)
AUTH_FAILURES = Counter(
    "omni_gateway_auth_failures_total",
    "Requests refused by signature checks, by reason",
    ["reason"],
)
RATE_LIMITED = Counter("omni_gateway_rate_limited_total", "Requests answered 429")
PUSHES = Counter(
    "omni_gateway_pushes_total", "Outbound push attempts by kind and outcome", ["kind", "outcome"]
)
SYNC_LAG = Histogram(
    "omni_gateway_sync_lag_seconds",
    "Platform event time to the channel acknowledging the push, by push kind and channel",
    ["kind", "channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
OLDEST_PENDING_PUSH_AGE = Gauge(
    "omni_gateway_oldest_pending_push_age_seconds",
    "Age (since its event) of the oldest push a channel has not acknowledged — pending, or "
    "dead and not superseded by a later delivered push of the same subject; 0 when none. "
    "Refreshed periodically, so a channel that is down shows its lag before any push is "
    "acknowledged",
    ["channel"],
)
SHED = Counter(
    "omni_gateway_shed_total",
    "Inbound requests answered 503 + Retry-After instead of waiting: saturated (no capture "
    "slot free in time) or peer_busy (the order service answered RESOURCE_EXHAUSTED, "
    "UNAVAILABLE or DEADLINE_EXCEEDED)",
    ["reason"],
)
