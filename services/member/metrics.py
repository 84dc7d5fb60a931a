"""The member service's business metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MEMBERS_REGISTERED = Counter(
    "omni_member_registered_total", "Members registered, by sign-up source", ["source"]
)
MEMBERS_IMPORTED = Counter(
    "omni_member_import_rows_total", "Distributor import rows, by outcome", ["outcome"]
)
MEMBERS_MERGED = Counter("omni_member_merges_total", "Members merged into another member")
OWNERSHIP_TRANSFERS = Counter(
    "omni_member_ownership_transfers_total", "Members moved to another owning guide"
)
POINTS_CHANGED = Counter(
    "omni_member_points_changed_total", "Points ledger entries written, by kind", ["kind"]
)
POINTS_VOLUME = Counter(
    "omni_member_points_volume_points_total", "Absolute points moved, by kind", ["kind"]
)
TIER_UPGRADES = Counter("omni_member_tier_upgrades_total", "Tier upgrades, by new tier", ["tier"])
STORED_VALUE_ENTRIES = Counter(
    "omni_member_stored_value_entries_total", "Stored-value entries written, by kind", ["kind"]
)
STORED_VALUE_AMOUNT = Counter(
    "omni_member_stored_value_amount_minor_total",
    "Stored-value amounts moved (minor units), by kind",
    ["kind"],
)
STORED_VALUE_REFUSED = Counter(
    "omni_member_stored_value_payments_refused_total",
    "Stored-value payments refused for an insufficient balance",
)
MEMBER_CODES = Counter(
    "omni_member_codes_total",
    "Member codes issued and resolutions, by outcome (issued, resolved, replayed, expired, forged)",
    ["outcome"],
)
PURCHASES_RECORDED = Counter(
    "omni_member_purchase_records_total", "Purchase history entries from order events", ["kind"]
)
SEGMENT_EVALUATION = Histogram(
    "omni_member_segment_evaluation_seconds",
    "Time to evaluate one page of a segment",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
