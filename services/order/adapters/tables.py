"""The order database's own tables (created by migrations/versions/0002_orders.py)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

_ts = sa.DateTime(timezone=True)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("channel_id", sa.Text),
    sa.Column("channel_order_id", sa.Text),
    sa.Column("content_hash", sa.Text),
    sa.Column("channel_kind", sa.Integer),
    sa.Column("member_id", sa.Text),
    sa.Column("guest_contact", sa.Text),
    sa.Column("mode", sa.Text),
    sa.Column("aisle_handover", sa.Text),
    sa.Column("selling_store_id", sa.Text),
    sa.Column("selling_guide_staff_id", sa.Text),
    sa.Column("referring_guide_code", sa.Text),
    sa.Column("pickup_store_id", sa.Text),
    sa.Column("stock_channel", sa.Text),
    sa.Column("address", JSONB),
    sa.Column("currency", sa.Text),
    sa.Column("total_minor", sa.BigInteger),
    sa.Column("status", sa.Text),
    sa.Column("payment", sa.Text),
    sa.Column("cancel_reason", sa.Text),
    sa.Column("routing", JSONB),
    sa.Column("routing_attempts", sa.Integer),
    sa.Column("retry_routing", sa.Boolean),
    sa.Column("lease_until", _ts),
    sa.Column("pay_deadline", _ts),
    sa.Column("unfillable_deadline", _ts),
    sa.Column("created_at", _ts, server_default=sa.func.now()),
    sa.Column("updated_at", _ts, server_default=sa.func.now()),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("line_id", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer),
    sa.Column("sku_code", sa.Text),
    sa.Column("quantity", sa.Integer),
    sa.Column("unit_price_minor", sa.BigInteger),
    sa.Column("discount_minor", sa.BigInteger),
    sa.Column("line_total_minor", sa.BigInteger),
    sa.Column("category_code", sa.Text),
    sa.Column("returned_quantity", sa.Integer),
    sa.Column("refunded_minor", sa.BigInteger),
)

fulfilments = sa.Table(
    "fulfilments",
    metadata,
    sa.Column("fulfilment_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text),
    sa.Column("seq", sa.Integer),
    sa.Column("location_id", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("handover", sa.Text),
    sa.Column("items", JSONB),
    sa.Column("address", JSONB),
    sa.Column("handover_store_id", sa.Text),
    sa.Column("via_transfer", sa.Boolean),
    sa.Column("transfer_id", sa.Text),
    sa.Column("transfer_requested", sa.Boolean),
    sa.Column("reservation_key", sa.Text),
    sa.Column("distance_meters", sa.Float),
    sa.Column("route_hint", sa.Text),
    sa.Column("assignee", sa.Text),
    sa.Column("created_at", _ts, server_default=sa.func.now()),
    sa.Column("updated_at", _ts, server_default=sa.func.now()),
)

order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("order_id", sa.Text),
    sa.Column("from_status", sa.Text),
    sa.Column("to_status", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("at", _ts, server_default=sa.func.now()),
)

routing_rules = sa.Table(
    "routing_rules",
    metadata,
    sa.Column("channel_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("body", JSONB),
    sa.Column("created_at", _ts, server_default=sa.func.now()),
)

order_returns = sa.Table(
    "order_returns",
    metadata,
    sa.Column("return_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text),
    sa.Column("receiving_location_id", sa.Text),
    sa.Column("by_post", sa.Boolean),
    sa.Column("lines", JSONB),
    sa.Column("refund_total_minor", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("restocked", sa.Boolean),
    sa.Column("received_at", _ts, server_default=sa.func.now()),
)
