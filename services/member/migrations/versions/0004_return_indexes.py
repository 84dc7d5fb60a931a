"""Returns looked up by order: the order consumer sums an order's earlier refunds and
reversed points for each return it applies; without these indexes each sum read the whole
history and ledger.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_purchase_history_return_order ON purchase_history (order_id)"
        " WHERE kind = 2"
    )
    op.execute(
        "CREATE INDEX ix_points_entries_reverse_order ON points_entries (order_id) WHERE kind = 2"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_points_entries_reverse_order")
    op.execute("DROP INDEX ix_purchase_history_return_order")
