"""Prometheus metrics shared by every service, and the HTTP endpoint that exposes them.

Business metrics belong to each service's own ``metrics.py``; these are the mechanics'.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_HANDLED = Counter(
    "omni_grpc_server_handled_total",
    "gRPC calls completed by the server, by method and status code",
    ["service", "method", "code"],
)
RPC_DURATION = Histogram(
    "omni_grpc_server_handling_seconds",
    "gRPC server call duration",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("omni_outbox_backlog_events", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "omni_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "omni_outbox_published_total", "Outbox rows published to Kafka", ["service", "topic"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "omni_outbox_publish_failures_total", "Failed outbox publish attempts", ["service"]
)
OUTBOX_BATCH_EVENTS = Histogram(
    "omni_outbox_batch_size_events",
    "Outbox rows published per relay batch (one claim, one produce batch, one mark)",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
OUTBOX_PUBLISH_DELAY = Histogram(
    "omni_outbox_publish_delay_seconds",
    "From an outbox row's commit to the broker acknowledging it",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONSUMER_EVENTS = Counter(
    "omni_consumer_events_total",
    "Events handled by consumers, by outcome (applied, duplicate, ignored, dead_lettered)",
    ["service", "group", "event_type", "outcome"],
)
CONSUMER_FAILURES = Counter(
    "omni_consumer_failures_total",
    "Failed attempts to apply an event (each retry counts)",
    ["service", "group", "event_type"],
)
CONSUMER_DEAD_LETTERS = Counter(
    "omni_consumer_dead_letters_total",
    "Events parked in the dead-letter topic",
    ["service", "group"],
)
CONSUMER_BATCH_EVENTS = Histogram(
    "omni_consumer_batch_size_events",
    "Subscribed events per consumer batch (applied in one transaction when all goes well)",
    ["service", "group"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CONSUMER_EVENT_DELAY = Histogram(
    "omni_consumer_event_delay_seconds",
    "From the event's commit at its producer to its effect committed by this consumer "
    "(outbox, relay, broker and consumer together)",
    ["service", "group", "event_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge(
    "omni_consumer_lag_messages",
    "Messages behind the partition's high watermark",
    ["service", "group", "topic", "partition"],
)


def serve_metrics(host: str, port: int) -> int:
    """Start the /metrics HTTP endpoint in a thread; returns the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])
