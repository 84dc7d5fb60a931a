"""The order as an aggregate: a version for optimistic saves, and the first-fit hold asked of
inventory before its answer is recorded (so a resumed order asks the very same question).

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE orders ADD COLUMN version integer NOT NULL DEFAULT 1")
    op.execute("ALTER TABLE orders ADD COLUMN hold_intent jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE orders DROP COLUMN hold_intent")
    op.execute("ALTER TABLE orders DROP COLUMN version")
