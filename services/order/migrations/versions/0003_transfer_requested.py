"""Fulfilment legs remember that their transfer was asked for before inventory answered, so
a cancel after a crash in between still finds and calls off the transfer.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE fulfilments ADD COLUMN transfer_requested boolean NOT NULL DEFAULT false"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE fulfilments DROP COLUMN transfer_requested")
