"""ATP reads as index-only scans: the by-SKU index carries the stock figures.

ATP for a batch of SKUs reads every location's row of each SKU; with the figures in the
index those rows are neighbours in a few index pages instead of one heap page each.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_stock_levels_sku")
    op.execute(
        "CREATE INDEX ix_stock_levels_sku_atp ON stock_levels (sku_code, location_id) "
        "INCLUDE (on_hand, reserved, safety_stock, in_transit)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_stock_levels_sku_atp")
    op.create_index("ix_stock_levels_sku", "stock_levels", ["sku_code", "location_id"])
