"""The order service's business metrics (RPC, outbox and consumer ones come from libs.metrics)."""

from __future__ import annotations

from omni.order.v1 import order_pb2 as pb
from prometheus_client import Counter, Gauge

ORDERS_CAPTURED = Counter(
    "omni_order_orders_captured_total",
    "Orders captured, by channel kind (own_online, marketplace, store, distribution, "
    "local_life) and fulfilment mode (duplicates not counted)",
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
ORDERS_FINISHED = Counter(
    "omni_order_orders_finished_total",
    "Orders whose life ended (counted once the final state is committed), by channel kind, "
    "fulfilment mode and outcome (completed, cancelled)",
    ["channel_kind", "mode", "outcome"],
)
UNFILLABLE_ORDERS = Gauge(
    "omni_order_unfillable_orders",
    "Orders waiting in the unfillable queue now (refreshed by every background round)",
)

# Cancel reasons the service itself gives; a reason a caller typed counts as "customer" so
# the label stays bounded.
CANCEL_REASONS = frozenset(
    {"customer", "unpaid_expired", "unfillable_deadline", "hold_expired", "allocation_failed"}
)


def channel_kind_label(kind: int | str) -> str:
    """The channel kind as a label value: own_online, marketplace, ... (unspecified)."""
    try:
        name = pb.ChannelKind.Name(int(kind))  # type: ignore[arg-type]
    except ValueError:
        return "unspecified"
    return name.removeprefix("CHANNEL_KIND_").lower()


def cancel_reason_label(reason: str) -> str:
    return reason if reason in CANCEL_REASONS else "customer"
