"""Purchase categories as their own rows, indexed by (category, time), so "bought X within N
days" reads the few rows of that window instead of every purchase of the category.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = (
    """
    CREATE TABLE purchase_categories (
        history_id bigint NOT NULL REFERENCES purchase_history (id),
        category text NOT NULL,
        member_id text NOT NULL REFERENCES members (member_id),
        occurred_at timestamptz NOT NULL,
        PRIMARY KEY (history_id, category)
    )
    """,
    """
    CREATE INDEX ix_purchase_categories_window
        ON purchase_categories (category, occurred_at, member_id)
    """,
    "CREATE INDEX ix_purchase_categories_member ON purchase_categories (member_id)",
    """
    INSERT INTO purchase_categories (history_id, category, member_id, occurred_at)
    SELECT id, unnest(categories), member_id, occurred_at FROM purchase_history WHERE kind = 1
    """,
    "DROP INDEX ix_purchase_history_categories",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        "CREATE INDEX ix_purchase_history_categories ON purchase_history USING gin (categories)"
    )
    op.execute("DROP TABLE purchase_categories")
