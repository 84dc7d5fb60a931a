"""The gateway's business metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INBOUND_PAYLOADS = Counter(
    "omni_gateway_inbound_payloads_total", "Inbound payloads stored, by route", ["route"]
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
    "Platform event time to the channel acknowledging the push",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
