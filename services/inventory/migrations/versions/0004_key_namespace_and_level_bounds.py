"""Senders' idempotency keys get their own namespace; levels are bounded.

A sender's key is stored as ``client:<key>``; keys the service makes (``reservation:…``,
``transfer:…``, ``request:…``, ``import:…``) never start with ``client:``, so a sender can no
longer take a key that a later confirm or shipment needs (a unique violation, INTERNAL).
Existing movements recorded under a sender's key are renamed so retries of them are still
recognised. Service-made keys are told apart by their form: transfer movements, the SALE of
a confirmed reservation (``reservation:<order>:<location>:<sku>`` with its reason and
reference), and the ``request:`` / ``import:`` defaults. The ledger is append-only, so its
trigger is switched off for this one rename, in this transaction.

On hand and in transit of a level stay at or below 10^12 units (domain.stock.MAX_LEVEL), so
channel sums fit an int64; the checks are NOT VALID so old rows never block the upgrade.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MAX_LEVEL = 10**12


def upgrade() -> None:
    op.execute("ALTER TABLE stock_movements DISABLE TRIGGER stock_movements_append_only")
    op.execute(
        """
        UPDATE stock_movements SET idempotency_key = 'client:' || idempotency_key
        WHERE kind IN ('receipt', 'sale', 'adjustment', 'return', 'count')
          AND idempotency_key NOT LIKE 'request:%'
          AND idempotency_key NOT LIKE 'import:%'
          AND NOT (
            kind = 'sale' AND reason = 'reservation confirmed'
            AND idempotency_key = 'reservation:' || reference || ':' || location_id || ':'
                                  || sku_code
          )
        """
    )
    op.execute("ALTER TABLE stock_movements ENABLE TRIGGER stock_movements_append_only")
    op.execute(
        "ALTER TABLE stock_levels ADD CONSTRAINT ck_stock_on_hand_max "
        f"CHECK (on_hand <= {MAX_LEVEL}) NOT VALID"
    )
    op.execute(
        "ALTER TABLE stock_levels ADD CONSTRAINT ck_stock_in_transit_max "
        f"CHECK (in_transit <= {MAX_LEVEL}) NOT VALID"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE stock_levels DROP CONSTRAINT IF EXISTS ck_stock_in_transit_max")
    op.execute("ALTER TABLE stock_levels DROP CONSTRAINT IF EXISTS ck_stock_on_hand_max")
    op.execute("ALTER TABLE stock_movements DISABLE TRIGGER stock_movements_append_only")
    op.execute(
        "UPDATE stock_movements SET idempotency_key = substr(idempotency_key, 8) "
        "WHERE idempotency_key LIKE 'client:%'"
    )
    op.execute("ALTER TABLE stock_movements ENABLE TRIGGER stock_movements_append_only")
