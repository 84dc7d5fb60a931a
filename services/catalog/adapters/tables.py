"""The catalog database's own tables (migrations/versions create them)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()


def _now() -> sa.Column[datetime]:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


brands = sa.Table(
    "brands",
    metadata,
    sa.Column("brand_code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("same_price_online_offline", sa.Boolean, nullable=False),
    sa.Column("online_only", sa.Boolean, nullable=False),
    _now(),
)

categories = sa.Table(
    "categories",
    metadata,
    sa.Column("category_code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("parent_code", sa.Text, sa.ForeignKey("categories.category_code"), index=True),
    _now(),
)

styles = sa.Table(
    "styles",
    metadata,
    sa.Column("style_code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("brand_code", sa.Text, sa.ForeignKey("brands.brand_code"), index=True),
    sa.Column("category_code", sa.Text, sa.ForeignKey("categories.category_code"), index=True),
    sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
    _now(),
)

skus = sa.Table(
    "skus",
    metadata,
    sa.Column("sku_code", sa.Text, primary_key=True),
    sa.Column(
        "style_code", sa.Text, sa.ForeignKey("styles.style_code"), nullable=False, index=True
    ),
    sa.Column("name", sa.Text, nullable=False),
    # As the caller sent it (EAN-13 or UPC-A); uniqueness is on its GTIN-13 form.
    sa.Column("barcode", sa.Text),
    sa.Column("gtin", sa.Text),
    sa.Column("color", sa.Text, nullable=False, server_default=""),
    sa.Column("size", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("lifecycle", sa.Text, nullable=False, server_default="draft"),
    sa.Column("list_price_minor", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
    _now(),
    sa.UniqueConstraint("gtin", name="uq_skus_gtin"),
)

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("channel_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
)

assortments = sa.Table(
    "assortments",
    metadata,
    sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
    sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True, index=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("sellable_from", sa.DateTime(timezone=True)),
    sa.Column("sellable_until", sa.DateTime(timezone=True)),
    _now(),
)

channel_sku_mappings = sa.Table(
    "channel_sku_mappings",
    metadata,
    sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
    sa.Column("external_sku_id", sa.Text, primary_key=True),
    sa.Column("external_item_id", sa.Text, nullable=False, server_default=""),
    sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), nullable=False),
    sa.UniqueConstraint("channel_id", "sku_code", name="uq_channel_sku_mappings_sku"),
)

channel_price_rules = sa.Table(
    "channel_price_rules",
    metadata,
    sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
    sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True),
    sa.Column("fixed_minor", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("percentage_bp", sa.Integer),
    _now(),
)

regional_prices = sa.Table(
    "regional_prices",
    metadata,
    sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True),
    sa.Column("region_code", sa.Text, primary_key=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    _now(),
)

promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("promotion_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
    # Set, in the same transaction as the outbox row, by whichever replica emitted the event.
    sa.Column("started_emitted_at", sa.DateTime(timezone=True)),
    sa.Column("ended_emitted_at", sa.DateTime(timezone=True)),
)

promotion_channels = sa.Table(
    "promotion_channels",
    metadata,
    sa.Column("promotion_id", sa.Text, sa.ForeignKey("promotions.promotion_id"), primary_key=True),
    sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
)

promotion_items = sa.Table(
    "promotion_items",
    metadata,
    sa.Column("promotion_id", sa.Text, sa.ForeignKey("promotions.promotion_id"), primary_key=True),
    sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True, index=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
)
