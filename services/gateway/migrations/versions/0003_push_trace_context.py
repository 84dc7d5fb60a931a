"""Outbound pushes keep the trace context of the event that queued them, so the push joins
that event's trace.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbound_pushes ADD COLUMN trace_context JSONB DEFAULT '{}' NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE outbound_pushes DROP COLUMN trace_context")
