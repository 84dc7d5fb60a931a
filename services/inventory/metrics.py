"""Inventory's business metrics (the RPC, outbox and consumer ones come from libs.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RESERVATIONS = Counter(
    "omni_inventory_reservations_total",
    "Holds (Reserve and ReserveBatch) by outcome (reserved, refused_no_stock, repeated, shed)",
    ["outcome"],
)
RESERVED_UNITS = Counter("omni_inventory_reserved_units_total", "Units put on hold for orders")
RESERVATION_ENDINGS = Counter(
    "omni_inventory_reservation_endings_total",
    "Reservations that ended, by how (confirmed, released, expired)",
    ["status"],
)
MOVEMENTS = Counter(
    "omni_inventory_movements_total", "Ledger movements recorded, by kind", ["kind"]
)
MOVEMENT_UNITS = Counter(
    "omni_inventory_movement_units_total",
    "Absolute units moved by ledger movements, by kind",
    ["kind"],
)
IMPORT_ROWS = Counter(
    "omni_inventory_import_rows_total",
    "Bulk import rows by outcome (applied, duplicate, rejected)",
    ["outcome"],
)
TRANSFERS = Counter(
    "omni_inventory_transfers_total",
    "Transfer steps taken (requested, shipped, received)",
    ["step"],
)
TRANSFER_DISCREPANCY_UNITS = Counter(
    "omni_inventory_transfer_discrepancy_units_total",
    "Units that did not arrive as shipped (absolute difference) on received transfers",
)
RESERVATION_BATCH_HOLDS = Histogram(
    "omni_inventory_reservation_batch_orders",
    "Holds applied together in one reservation batch (one transaction)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
