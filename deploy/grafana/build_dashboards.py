"""Writes the Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel lists below.

Run ``python deploy/grafana/build_dashboards.py`` after changing a panel; the SRE test
evaluates every query here against a real Prometheus scraping the platform.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    legend: str = ""
    unit: str = "short"
    kind: str = "timeseries"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]


RPC_ALL = 'sum by (service) (rate(omni_grpc_server_handled_total{service=~"$service"}[5m]))'
# "or RPC_ALL * 0": a service without a single fault shows 0, not a gap.
RPC_ERRORS = (
    "(sum by (service) (rate(omni_grpc_server_handled_total"
    '{service=~"$service",code=~"INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS"}[5m]))'
    f" or {RPC_ALL} * 0) / {RPC_ALL}"
)
RPC_P99 = (
    "histogram_quantile(0.99, sum by (le, service) "
    '(rate(omni_grpc_server_handling_seconds_bucket{service=~"$service"}[5m])))'
)


def method_p99(method: str) -> str:
    return (
        "histogram_quantile(0.99, sum by (le) "
        f'(rate(omni_grpc_server_handling_seconds_bucket{{method=~".*/{method}"}}[5m])))'
    )


DASHBOARDS = (
    Dashboard(
        "omni-overview",
        "Omni / Platform overview",
        (
            Panel("Services up", 'up{job=~"omni-.*"}', "{{job}}", kind="stat"),
            Panel("RPC rate", RPC_ALL, "{{service}}", "reqps"),
            Panel("RPC server-fault ratio", RPC_ERRORS, "{{service}}", "percentunit"),
            Panel("RPC p99 latency", RPC_P99, "{{service}}", "s"),
            Panel(
                "RPCs by code",
                "sum by (service, code) (rate(omni_grpc_server_handled_total[5m]))",
                "{{service}} {{code}}",
                "reqps",
            ),
        ),
    ),
    Dashboard(
        "omni-events",
        "Omni / Events and queues",
        (
            Panel("Outbox backlog", "max by (service) (omni_outbox_backlog_events)", "{{service}}"),
            Panel(
                "Oldest unpublished event",
                "max by (service) (omni_outbox_oldest_age_seconds)",
                "{{service}}",
                "s",
            ),
            Panel(
                "Events published",
                "sum by (service, topic) (rate(omni_outbox_published_total[5m]))",
                "{{service}} → {{topic}}",
                "ops",
            ),
            Panel(
                "Consumer lag",
                "sum by (service, group) (omni_consumer_lag_messages)",
                "{{group}}",
            ),
            Panel(
                "Events applied by outcome",
                "sum by (service, outcome) (rate(omni_consumer_events_total[5m]))",
                "{{service}} {{outcome}}",
                "ops",
            ),
            Panel(
                "Event committed → effect committed by consumer (p99)",
                "histogram_quantile(0.99, sum by (service, group, le)"
                " (rate(omni_consumer_event_delay_seconds_bucket[5m])))",
                "{{group}}",
                "s",
            ),
            Panel(
                "Outbox commit → broker acknowledged (p99)",
                "histogram_quantile(0.99, sum by (service, le)"
                " (rate(omni_outbox_publish_delay_seconds_bucket[5m])))",
                "{{service}}",
                "s",
            ),
            Panel(
                "Consumer failures and dead letters",
                "sum by (service) (increase(omni_consumer_failures_total[15m]))"
                " or sum by (service) (increase(omni_consumer_dead_letters_total[15m]))",
                "{{service}}",
            ),
        ),
    ),
    Dashboard(
        "omni-orders",
        "Omni / Orders and routing",
        (
            Panel(
                "Orders captured, by channel kind and mode",
                "sum by (channel_kind, mode) (rate(omni_order_orders_captured_total[5m]))",
                "{{channel_kind}} {{mode}}",
                "ops",
            ),
            Panel(
                "Orders finished, by outcome",
                "sum by (channel_kind, outcome) (increase(omni_order_orders_finished_total[1h]))",
                "{{channel_kind}} {{outcome}}",
            ),
            Panel(
                "Routing decisions, by outcome",
                "sum by (outcome) (increase(omni_order_routing_decisions_total[1h]))",
                "{{outcome}}",
            ),
            Panel(
                "Split share of routing decisions",
                'sum(increase(omni_order_routing_decisions_total{outcome="split"}[1h]))'
                " / sum(increase(omni_order_routing_decisions_total[1h]))",
                "split",
                "percentunit",
            ),
            Panel(
                "Unfillable queue (orders waiting for stock)",
                "max(omni_order_unfillable_orders)",
                "unfillable",
            ),
            Panel(
                "Cancellations, by reason",
                "sum by (reason) (increase(omni_order_cancellations_total[1h]))",
                "{{reason}}",
            ),
            Panel(
                "Holds refused by inventory after routing",
                "sum(increase(omni_order_holds_refused_total[1h]))",
                "refused",
            ),
            Panel(
                "Holds expired at inventory, by order status",
                "sum by (status) (increase(omni_order_holds_expired_total[1h]))",
                "{{status}}",
            ),
            Panel("CaptureOrder p99", method_p99("CaptureOrder"), "p99", "s"),
        ),
    ),
    Dashboard(
        "omni-inventory",
        "Omni / Inventory",
        (
            Panel(
                "Reservations by outcome",
                "sum by (outcome) (rate(omni_inventory_reservations_total[5m]))",
                "{{outcome}}",
                "ops",
            ),
            Panel(
                "Reservations refused (not enough stock)",
                'sum(increase(omni_inventory_reservations_total{outcome="refused_no_stock"}[1h]))',
                "refused",
            ),
            Panel(
                "Reservations ended (confirmed, released, expired)",
                "sum by (status) (increase(omni_inventory_reservation_endings_total[15m]))",
                "{{status}}",
            ),
            Panel(
                "Ledger movements by kind",
                "sum by (kind) (rate(omni_inventory_movements_total[5m]))",
                "{{kind}}",
                "ops",
            ),
            Panel("ATP query p99", method_p99("GetAvailability"), "p99", "s"),
            Panel("Nearest-stock query p99", method_p99("FindNearestStock"), "p99", "s"),
            Panel(
                "Transfers by step",
                "sum by (step) (increase(omni_inventory_transfers_total[1h]))",
                "{{step}}",
            ),
        ),
    ),
    Dashboard(
        "omni-gateway",
        "Omni / Gateway and channels",
        (
            Panel(
                "Inbound payloads, by channel kind and result",
                "sum by (channel_kind, result) (rate(omni_gateway_inbound_payloads_total[5m]))",
                "{{channel_kind}} {{result}}",
                "ops",
            ),
            Panel(
                "Inbound payloads refused or failed, by route",
                "sum by (route, result) (increase(omni_gateway_inbound_payloads_total"
                '{result=~"rejected|failed"}[1h]))',
                "{{route}} {{result}}",
            ),
            Panel(
                "Channel orders (first time or duplicate)",
                "sum by (channel_kind, outcome) (increase(omni_gateway_channel_orders_total[1h]))",
                "{{channel_kind}} {{outcome}}",
            ),
            Panel(
                "Signature and auth failures, by reason",
                "sum by (reason) (increase(omni_gateway_auth_failures_total[1h]))",
                "{{reason}}",
            ),
            Panel(
                "Requests rate-limited (429)",
                "sum(increase(omni_gateway_rate_limited_total[1h]))",
                "429",
            ),
            Panel(
                "Pushes to channels, by kind and outcome",
                "sum by (kind, outcome) (increase(omni_gateway_pushes_total[15m]))",
                "{{kind}} {{outcome}}",
            ),
            Panel(
                "Sync lag to channels p99 (event → acknowledged push)",
                "histogram_quantile(0.99, sum by (le, channel) "
                "(rate(omni_gateway_sync_lag_seconds_bucket[15m])))",
                "{{channel}}",
                "s",
            ),
            Panel(
                "Oldest pending push, by channel",
                "max by (channel) (omni_gateway_oldest_pending_push_age_seconds)",
                "{{channel}}",
                "s",
            ),
        ),
    ),
    Dashboard(
        "omni-members-distribution",
        "Omni / Members and distribution",
        (
            Panel(
                "Members registered",
                "sum(increase(omni_member_registered_total[1h]))",
                "registered",
            ),
            Panel(
                "Points ledger operations",
                "sum by (kind) (rate(omni_member_points_changed_total[5m]))",
                "{{kind}}",
                "ops",
            ),
            Panel(
                "Stored-value ledger operations",
                "sum by (kind) (rate(omni_member_stored_value_entries_total[5m]))",
                "{{kind}}",
                "ops",
            ),
            Panel(
                "Commission accrued (minor units)",
                "sum by (role) (increase(omni_distribution_commission_accrued_minor_total[1h]))",
                "{{role}}",
            ),
            Panel(
                "Orders attributed, by commission flow",
                "sum by (flow) (increase(omni_distribution_orders_attributed_total[1h]))",
                "flow {{flow}}",
            ),
            Panel(
                "Commission clawed back (minor units)",
                "sum(increase(omni_distribution_commission_clawed_back_minor_total[1h]))",
                "clawed back",
            ),
            Panel(
                "Alerts raised",
                "sum by (kind) (increase(omni_distribution_alerts_raised_total[1h]))",
                "{{kind}}",
            ),
        ),
    ),
)


def panel_json(panel: Panel, index: int) -> dict[str, object]:
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                "expr": panel.expr,
                "legendFormat": panel.legend,
            }
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, object]:
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "tags": ["omni"],
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "service",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": "label_values(omni_grpc_server_handled_total, service)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": [panel_json(p, i) for i, p in enumerate(dashboard.panels)],
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for dashboard in DASHBOARDS:
        path = OUT / f"{dashboard.uid}.json"
        path.write_text(json.dumps(dashboard_json(dashboard), indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
