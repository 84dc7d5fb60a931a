"""Inbound payloads record whether their sender was authenticated; the unauthenticated ones
are cut to 4 KB and purged after a TTL, so forged floods cannot grow the table without
limit. Rows stored before are treated as authenticated (kept).

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE inbound_payloads ADD COLUMN authenticated BOOLEAN DEFAULT true NOT NULL"
    )
    # New rows start unauthenticated until the signature checks out.
    op.execute("ALTER TABLE inbound_payloads ALTER COLUMN authenticated SET DEFAULT false")
    op.execute(
        "CREATE INDEX ix_inbound_payloads_unauthenticated ON inbound_payloads (received_at) "
        "WHERE NOT authenticated"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_inbound_payloads_unauthenticated")
    op.execute("ALTER TABLE inbound_payloads DROP COLUMN authenticated")
