"""Running statement totals kept by a trigger on entries; entries become append-only.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY = "beneficiary_kind, beneficiary_id, period, currency"


def upgrade() -> None:
    op.create_table(
        "statement_totals",
        sa.Column("beneficiary_kind", sa.SmallInteger, primary_key=True),
        sa.Column("beneficiary_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, primary_key=True),
        sa.Column("currency", sa.Text, primary_key=True),
        sa.Column("commission_minor", sa.BigInteger, nullable=False),
        sa.Column("rebate_minor", sa.BigInteger, nullable=False),
        sa.Column("clawback_minor", sa.BigInteger, nullable=False),
        sa.Column("entry_count", sa.BigInteger, nullable=False),
    )
    totals = f"""
        SELECT {_KEY},
               coalesce(sum(amount_minor) FILTER (WHERE kind = 1), 0),
               coalesce(sum(amount_minor) FILTER (WHERE kind = 2), 0),
               coalesce(sum(amount_minor) FILTER (WHERE kind = 3), 0),
               count(*)
    """
    op.execute(f"INSERT INTO statement_totals {totals} FROM entries GROUP BY {_KEY}")
    # Rows are upserted in key order so two bookings never wait on each other crosswise.
    op.execute(
        f"""
        CREATE FUNCTION entries_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO statement_totals AS t
            {totals} FROM new_entries GROUP BY {_KEY} ORDER BY {_KEY}
            ON CONFLICT ({_KEY}) DO UPDATE SET
                commission_minor = t.commission_minor + EXCLUDED.commission_minor,
                rebate_minor = t.rebate_minor + EXCLUDED.rebate_minor,
                clawback_minor = t.clawback_minor + EXCLUDED.clawback_minor,
                entry_count = t.entry_count + EXCLUDED.entry_count;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER entries_roll_up AFTER INSERT ON entries"
        " REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT"
        " EXECUTE FUNCTION entries_roll_up()"
    )
    # The ledger is append-only: a correction is a new entry, never an edit.
    op.execute(
        """
        CREATE FUNCTION entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'entries are append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries"
        " FOR EACH STATEMENT EXECUTE FUNCTION entries_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER entries_append_only ON entries")
    op.execute("DROP FUNCTION entries_append_only()")
    op.execute("DROP TRIGGER entries_roll_up ON entries")
    op.execute("DROP FUNCTION entries_roll_up()")
    op.drop_table("statement_totals")
