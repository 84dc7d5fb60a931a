"""Locations, stock levels, the movement ledger, reservations, transfers, channel quotas.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.func.now()


def upgrade() -> None:
    op.create_table(
        "locations",
        sa.Column("location_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("province", sa.Text, nullable=False),
        sa.Column("city", sa.Text, nullable=False),
        sa.Column("latitude", sa.Float, nullable=False),
        sa.Column("longitude", sa.Float, nullable=False),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("opening_hours", JSONB, nullable=False, server_default="[]"),
        sa.Column("capabilities", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("channels", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("default_safety_stock", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name="ck_locations_latitude"),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name="ck_locations_longitude"),
    )
    # Nearest stock prefilters on a latitude/longitude box before computing distances.
    op.create_index("ix_locations_lat_lng", "locations", ["latitude", "longitude"])

    op.create_table(
        "stock_levels",
        sa.Column("location_id", sa.Text, sa.ForeignKey("locations.location_id"), primary_key=True),
        sa.Column("sku_code", sa.Text, sa.ForeignKey("tracked_skus.sku_code"), primary_key=True),
        sa.Column("on_hand", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("safety_stock", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("in_transit", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        # The last line of defence against oversell and lost stock, whatever the code does.
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_on_hand"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_reserved"),
        sa.CheckConstraint("safety_stock >= 0", name="ck_stock_safety"),
        sa.CheckConstraint("in_transit >= 0", name="ck_stock_in_transit"),
    )
    # Leave room on each page so reservation updates stay HOT (no index churn).
    op.execute("ALTER TABLE stock_levels SET (fillfactor = 80)")
    op.create_index("ix_stock_levels_sku", "stock_levels", ["sku_code", "location_id"])

    op.create_table(
        "stock_movements",
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
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )
    op.create_index(
        "ix_stock_movements_level", "stock_movements", ["location_id", "sku_code", "movement_id"]
    )
    # The ledger is append-only: the database refuses to change or remove a movement.
    op.execute(
        """
        CREATE FUNCTION stock_movements_append_only() RETURNS trigger AS $$
        BEGIN
          RAISE EXCEPTION 'stock_movements is append-only';
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER stock_movements_append_only BEFORE UPDATE OR DELETE ON stock_movements
          FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only()
        """
    )

    op.create_table(
        "reservations",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )
    op.create_index(
        "ix_reservations_active_expiry",
        "reservations",
        ["expires_at"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "reservation_lines",
        sa.Column("order_id", sa.Text, sa.ForeignKey("reservations.order_id"), primary_key=True),
        sa.Column("line_id", sa.Text, primary_key=True),
        sa.Column("sku_code", sa.Text, nullable=False),
        sa.Column("location_id", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.Text, primary_key=True),
        sa.Column("from_location_id", sa.Text, nullable=False),
        sa.Column("to_location_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True)),
        sa.Column("received_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "transfer_lines",
        sa.Column("transfer_id", sa.Text, sa.ForeignKey("transfers.transfer_id"), primary_key=True),
        sa.Column("sku_code", sa.Text, primary_key=True),
        sa.Column("requested", sa.BigInteger, nullable=False),
        sa.Column("shipped", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
    )

    op.create_table(
        "channel_quotas",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("sku_code", sa.Text, primary_key=True),
        sa.Column("quota", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quota >= 0", name="ck_channel_quota"),
    )


def downgrade() -> None:
    for table in (
        "channel_quotas",
        "transfer_lines",
        "transfers",
        "reservation_lines",
        "reservations",
        "stock_movements",
        "stock_levels",
        "locations",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS stock_movements_append_only()")
