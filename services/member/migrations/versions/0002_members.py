"""Members, identities, ownership, points and stored-value ledgers, purchase history,
merges, spent member codes.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


SCHEMA = """
        CREATE TABLE members (
            member_id text PRIMARY KEY,
            phone text NOT NULL,
            name text NOT NULL DEFAULT '',
            source smallint NOT NULL,
            distributor_id text NOT NULL DEFAULT '',
            owner_guide_staff_id text NOT NULL DEFAULT '',
            owner_store_id text NOT NULL DEFAULT '',
            tier smallint NOT NULL DEFAULT 1,
            points_balance bigint NOT NULL DEFAULT 0,
            -- The e-card never goes negative, whatever races the application loses.
            stored_value_minor bigint NOT NULL DEFAULT 0 CHECK (stored_value_minor >= 0),
            lifetime_spend_minor bigint NOT NULL DEFAULT 0,
            order_count integer NOT NULL DEFAULT 0,
            last_purchase_at timestamptz,
            consents smallint[] NOT NULL DEFAULT '{}',
            state smallint NOT NULL DEFAULT 1,
            merged_into text REFERENCES members (member_id),
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_members_phone UNIQUE (phone)
        );
        CREATE INDEX ix_members_owner_guide ON members (owner_guide_staff_id);
        CREATE INDEX ix_members_owner_store ON members (owner_store_id);
        CREATE INDEX ix_members_tier ON members (tier);

        CREATE TABLE member_identities (
            kind smallint NOT NULL,
            namespace text NOT NULL,
            external_id text NOT NULL,
            member_id text NOT NULL REFERENCES members (member_id),
            bound_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, namespace, external_id)
        );
        CREATE INDEX ix_member_identities_member ON member_identities (member_id);

        CREATE TABLE ownership_changes (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            member_id text NOT NULL REFERENCES members (member_id),
            previous_owner_guide_staff_id text NOT NULL,
            owner_guide_staff_id text NOT NULL,
            owner_store_id text NOT NULL,
            reason text NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_ownership_changes_member ON ownership_changes (member_id, id);

        CREATE TABLE points_entries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            member_id text NOT NULL REFERENCES members (member_id),
            kind smallint NOT NULL,
            delta bigint NOT NULL,
            balance_after bigint NOT NULL,
            order_id text NOT NULL DEFAULT '',
            return_id text NOT NULL DEFAULT '',
            note text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_points_entries_member ON points_entries (member_id, id);
        -- An order earns once and a return reverses once, even if the inbox were bypassed.
        CREATE UNIQUE INDEX uq_points_earn_order ON points_entries (order_id) WHERE kind = 1;
        CREATE UNIQUE INDEX uq_points_reverse_return ON points_entries (return_id)
            WHERE kind = 2;

        CREATE TABLE stored_value_entries (
            entry_id uuid PRIMARY KEY,
            member_id text NOT NULL REFERENCES members (member_id),
            kind smallint NOT NULL,
            amount_minor bigint NOT NULL,
            balance_after bigint NOT NULL,
            payment_entry_id uuid REFERENCES stored_value_entries (entry_id),
            reference text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            seq bigint GENERATED ALWAYS AS IDENTITY
        );
        CREATE INDEX ix_stored_value_entries_member ON stored_value_entries (member_id, seq);
        CREATE INDEX ix_stored_value_entries_payment ON stored_value_entries (payment_entry_id)
            WHERE payment_entry_id IS NOT NULL;

        CREATE TABLE purchase_history (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            member_id text NOT NULL REFERENCES members (member_id),
            kind smallint NOT NULL,
            order_id text NOT NULL,
            return_id text NOT NULL DEFAULT '',
            channel_id text NOT NULL DEFAULT '',
            channel_kind smallint NOT NULL DEFAULT 0,
            store_id text NOT NULL DEFAULT '',
            amount_minor bigint NOT NULL,
            currency_code text NOT NULL,
            categories text[] NOT NULL DEFAULT '{}',
            points_delta bigint NOT NULL DEFAULT 0,
            occurred_at timestamptz NOT NULL
        );
        CREATE UNIQUE INDEX uq_purchase_history_order ON purchase_history (order_id)
            WHERE kind = 1;
        CREATE UNIQUE INDEX uq_purchase_history_return ON purchase_history (return_id)
            WHERE kind = 2;
        CREATE INDEX ix_purchase_history_member
            ON purchase_history (member_id, occurred_at DESC, id DESC);
        CREATE INDEX ix_purchase_history_categories ON purchase_history USING gin (categories);

        CREATE TABLE member_merges (
            merge_id uuid PRIMARY KEY,
            surviving_member_id text NOT NULL REFERENCES members (member_id),
            merged_member_id text NOT NULL UNIQUE REFERENCES members (member_id),
            reason text NOT NULL,
            points_moved bigint NOT NULL,
            stored_value_moved_minor bigint NOT NULL,
            identities_moved integer NOT NULL,
            purchase_records_moved integer NOT NULL,
            merged_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE spent_member_codes (
            code_id text PRIMARY KEY,
            member_id text NOT NULL,
            expires_at timestamptz NOT NULL,
            spent_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_spent_member_codes_expiry ON spent_member_codes (expires_at);
        """


def upgrade() -> None:
    # One statement per execute: asyncpg prepares each statement, which allows only one.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP TABLE spent_member_codes, member_merges, purchase_history, stored_value_entries, "
        "points_entries, ownership_changes, member_identities, members"
    )
