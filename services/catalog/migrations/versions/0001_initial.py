"""Platform tables and SKUs.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.platform_tables import create_platform_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables(op)
    op.create_table(
        "skus",
        sa.Column("sku_code", sa.Text, primary_key=True),
        sa.Column("style_code", sa.Text, nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("barcode", sa.Text),
        sa.Column("color", sa.Text, nullable=False, server_default=""),
        sa.Column("size", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("barcode", name="uq_skus_barcode"),
    )


def downgrade() -> None:
    op.drop_table("skus")
