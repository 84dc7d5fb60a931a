"""The catalog's business metrics (the RPC/outbox mechanics are in libs.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

SKUS_CREATED = Counter(
    "omni_catalog_skus_created_total", "SKUs created, by path (rpc or import)", ["path"]
)
SKU_LIFECYCLE_CHANGES = Counter(
    "omni_catalog_sku_lifecycle_changes_total", "SKU lifecycle transitions, by new state", ["to"]
)
IMPORT_ROWS = Counter(
    "omni_catalog_import_rows_total",
    "Bulk-import rows, by outcome (created, updated, unchanged, rejected)",
    ["outcome"],
)
PRICES_RESOLVED = Counter(
    "omni_catalog_prices_resolved_total",
    "Prices resolved, by the rule that produced them",
    ["source"],
)
SAME_PRICE_REFUSALS = Counter(
    "omni_catalog_same_price_refusals_total",
    "Channel price rules refused by a brand's same-price-online-and-offline policy",
)
PROMOTION_EVENTS = Counter(
    "omni_catalog_promotion_events_total", "Promotion started/ended events emitted", ["edge"]
)
