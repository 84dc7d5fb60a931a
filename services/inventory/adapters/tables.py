"""The inventory database's own tables (created by migrations/versions)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

tracked_skus = sa.Table(
    "tracked_skus",
    metadata,
    sa.Column("sku_code", sa.Text, primary_key=True),
    sa.Column("style_code", sa.Text, nullable=False),
    sa.Column("barcode", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "tracked_since", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

locations = sa.Table(
    "locations",
    metadata,
    sa.Column("location_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("province", sa.Text, nullable=False),
    sa.Column("city", sa.Text, nullable=False),
    sa.Column("latitude", sa.Float, nullable=False),
    sa.Column("longitude", sa.Float, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    # [{"day": 1..7, "open": minute, "close": minute}]
    sa.Column("opening_hours", JSONB, nullable=False, server_default="[]"),
    sa.Column("capabilities", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("channels", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("default_safety_stock", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

stock_levels = sa.Table(
    "stock_levels",
    metadata,
    sa.Column("location_id", sa.Text, sa.ForeignKey("locations.location_id"), primary_key=True),
    sa.Column("sku_code", sa.Text, sa.ForeignKey("tracked_skus.sku_code"), primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("safety_stock", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("in_transit", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

stock_movements = sa.Table(
    "stock_movements",
    metadata,
    sa.Column("movement_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("location_id", sa.Text, nullable=False),
    sa.Column("sku_code", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("on_hand_after", sa.BigInteger, nullable=False),
    sa.Column("counted_quantity", sa.BigInteger),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    sa.Column("reference", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

reservation_lines = sa.Table(
    "reservation_lines",
    metadata,
    sa.Column("order_id", sa.Text, sa.ForeignKey("reservations.order_id"), primary_key=True),
    sa.Column("line_id", sa.Text, primary_key=True),
    sa.Column("sku_code", sa.Text, nullable=False),
    sa.Column("location_id", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("transfer_id", sa.Text, primary_key=True),
    sa.Column("from_location_id", sa.Text, nullable=False),
    sa.Column("to_location_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("shipped_at", sa.DateTime(timezone=True)),
    sa.Column("received_at", sa.DateTime(timezone=True)),
)

transfer_lines = sa.Table(
    "transfer_lines",
    metadata,
    sa.Column("transfer_id", sa.Text, sa.ForeignKey("transfers.transfer_id"), primary_key=True),
    sa.Column("sku_code", sa.Text, primary_key=True),
    sa.Column("requested", sa.BigInteger, nullable=False),
    sa.Column("shipped", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
)

channel_quotas = sa.Table(
    "channel_quotas",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("sku_code", sa.Text, primary_key=True),
    sa.Column("quota", sa.BigInteger, nullable=False),
)
