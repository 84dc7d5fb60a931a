"""A local-life voucher keeps a digest of its code, checked when it is redeemed, and who
redeemed it where and when.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
ALTER TABLE channel_orders
    ADD COLUMN voucher_code_sha256 TEXT DEFAULT '' NOT NULL,
    ADD COLUMN redeemed_at TIMESTAMP WITH TIME ZONE,
    ADD COLUMN redeemed_store_id TEXT DEFAULT '' NOT NULL,
    ADD COLUMN redeemed_by TEXT DEFAULT '' NOT NULL
"""
    )


def downgrade() -> None:
    op.execute(
        """
ALTER TABLE channel_orders
    DROP COLUMN voucher_code_sha256,
    DROP COLUMN redeemed_at,
    DROP COLUMN redeemed_store_id,
    DROP COLUMN redeemed_by
"""
    )
