"""Indexes for the oldest-unacknowledged-push gauge: unacknowledged pushes by channel, and a
subject's pushes in order (is a dead push superseded by a later delivered one?).

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_outbound_pushes_unacknowledged ON outbound_pushes "
        "(channel_id, event_time) WHERE status IN ('pending', 'dead')"
    )
    op.execute(
        "CREATE INDEX ix_outbound_pushes_subject ON outbound_pushes "
        "(channel_id, kind, subject, push_id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_outbound_pushes_subject")
    op.execute("DROP INDEX IF EXISTS ix_outbound_pushes_unacknowledged")
