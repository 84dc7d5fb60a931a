"""The order service's business metrics (RPC, outbox and consumer ones come from libs.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

ORDERS_CAPTURED = Counter(
    "omni_order_orders_captured_total",
    "Orders captured, by channel kind and fulfilment mode (duplicates not counted)",
    ["channel_kind", "mode"],
)
DUPLICATE_CAPTURES = Counter(
    "omni_order_duplicate_captures_total",
    "Captures of a channel order id already captured, by outcome (same, refused)",
    ["outcome"],
)
ROUTING_DECISIONS = Counter(
    "omni_order_routing_decisions_total",
    "Routing decisions, by outcome (single, split, transfer, unfillable)",
    ["outcome"],
)
HOLDS_REFUSED = Counter(
    "omni_order_holds_refused_total", "Holds inventory refused after routing (then re-routed)"
)
TRANSITIONS = Counter(
    "omni_order_status_transitions_total", "Order status changes, by new status", ["status"]
)
CANCELLATIONS = Counter(
    "omni_order_cancellations_total",
    "Cancelled orders, by reason (customer, unpaid_expired, unfillable_deadline)",
    ["reason"],
)
RECOVERED = Counter(
    "omni_order_recovered_orders_total", "Orders resumed by the recovery task after a stop"
)
RETURNED_UNITS = Counter(
    "omni_order_returned_units_total", "Units received back, by condition", ["condition"]
)
REFUNDED_MINOR = Counter(
    "omni_order_refunded_minor_units_total", "Refunds computed for returns, in minor units"
)
HOLDS_EXPIRED = Counter(
    "omni_order_holds_expired_total",
    "Holds inventory expired on its own, by the order's status then",
    ["status"],
)
