"""Styles, brands, categories, lifecycle and prices of SKUs, channels, assortments, channel
SKU mappings, price rules and promotions.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _updated_at() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("brand_code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("same_price_online_offline", sa.Boolean, nullable=False),
        sa.Column("online_only", sa.Boolean, nullable=False),
        _updated_at(),
    )
    op.create_table(
        "categories",
        sa.Column("category_code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parent_code", sa.Text, sa.ForeignKey("categories.category_code"), index=True),
        _updated_at(),
    )
    op.create_table(
        "styles",
        sa.Column("style_code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("brand_code", sa.Text, sa.ForeignKey("brands.brand_code"), index=True),
        sa.Column("category_code", sa.Text, sa.ForeignKey("categories.category_code"), index=True),
        sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
        _updated_at(),
    )
    # SKUs created before styles existed get a style of their own code and first name.
    op.execute(
        "INSERT INTO styles (style_code, name) "
        "SELECT DISTINCT ON (style_code) style_code, name FROM skus ORDER BY style_code, sku_code"
    )
    op.add_column("skus", sa.Column("lifecycle", sa.Text, nullable=False, server_default="draft"))
    op.add_column("skus", sa.Column("list_price_minor", sa.BigInteger))
    op.add_column("skus", sa.Column("currency", sa.Text))
    op.add_column("skus", sa.Column("attributes", JSONB, nullable=False, server_default="{}"))
    op.add_column("skus", _updated_at())
    op.create_foreign_key("fk_skus_style", "skus", "styles", ["style_code"], ["style_code"])

    op.create_table(
        "channels",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
    )
    op.create_table(
        "assortments",
        sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column(
            "sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True, index=True
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("sellable_from", sa.DateTime(timezone=True)),
        sa.Column("sellable_until", sa.DateTime(timezone=True)),
        _updated_at(),
    )
    op.create_table(
        "channel_sku_mappings",
        sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("external_sku_id", sa.Text, primary_key=True),
        sa.Column("external_item_id", sa.Text, nullable=False, server_default=""),
        sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), nullable=False),
        sa.UniqueConstraint("channel_id", "sku_code", name="uq_channel_sku_mappings_sku"),
    )
    op.create_table(
        "channel_price_rules",
        sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True),
        sa.Column("fixed_minor", sa.BigInteger),
        sa.Column("currency", sa.Text),
        sa.Column("percentage_bp", sa.Integer),
        _updated_at(),
    )
    op.create_table(
        "regional_prices",
        sa.Column("sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True),
        sa.Column("region_code", sa.Text, primary_key=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        _updated_at(),
    )
    op.create_table(
        "promotions",
        sa.Column("promotion_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_emitted_at", sa.DateTime(timezone=True)),
        sa.Column("ended_emitted_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_promotions_pending_start",
        "promotions",
        ["start_at"],
        postgresql_where=sa.text("started_emitted_at IS NULL"),
    )
    op.create_index(
        "ix_promotions_pending_end",
        "promotions",
        ["end_at"],
        postgresql_where=sa.text("ended_emitted_at IS NULL"),
    )
    op.create_table(
        "promotion_channels",
        sa.Column(
            "promotion_id", sa.Text, sa.ForeignKey("promotions.promotion_id"), primary_key=True
        ),
        sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), primary_key=True),
    )
    op.create_table(
        "promotion_items",
        sa.Column(
            "promotion_id", sa.Text, sa.ForeignKey("promotions.promotion_id"), primary_key=True
        ),
        sa.Column(
            "sku_code", sa.Text, sa.ForeignKey("skus.sku_code"), primary_key=True, index=True
        ),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "promotion_items",
        "promotion_channels",
        "promotions",
        "regional_prices",
        "channel_price_rules",
        "channel_sku_mappings",
        "assortments",
        "channels",
    ):
        op.drop_table(table)
    op.drop_constraint("fk_skus_style", "skus", type_="foreignkey")
    for column in ("updated_at", "attributes", "currency", "list_price_minor", "lifecycle"):
        op.drop_column("skus", column)
    op.drop_table("styles")
    op.drop_table("categories")
    op.drop_table("brands")
