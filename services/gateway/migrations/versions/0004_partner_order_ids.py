"""Partner orders are keyed "<partner id>/<shop order id>" on their channel, so two partners
of one channel can use the same order numbers (services/gateway/connectors/distributor.py).
Rows written before keep working: a retry of such an order finds it under its new key and is
answered from the gateway, without reaching the order service again.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
UPDATE channel_orders
   SET channel_order_id = partner_id || '/' || channel_order_id
 WHERE partner_id <> '' AND position('/' in channel_order_id) = 0
"""
    )


def downgrade() -> None:
    op.execute(
        """
UPDATE channel_orders
   SET channel_order_id = substr(channel_order_id, length(partner_id) + 2)
 WHERE partner_id <> '' AND starts_with(channel_order_id, partner_id || '/')
"""
    )
