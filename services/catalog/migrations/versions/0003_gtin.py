"""One GTIN, one SKU: barcodes are unique by their GTIN-13 form.

A UPC-A code (12 digits) and the same code as a zero-prefixed EAN-13 are one GTIN; the
``gtin`` column holds the 13-digit form and carries the uniqueness, while ``barcode`` keeps
what the caller sent. Pairs that the old per-text constraint let in keep their barcodes; only
the earliest SKU of each such pair gets the GTIN, so the unique constraint can be built.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("skus", sa.Column("gtin", sa.Text))
    op.execute(
        """
        UPDATE skus s SET gtin = d.gtin
        FROM (
          SELECT sku_code, lpad(barcode, 13, '0') AS gtin,
                 row_number() OVER (
                   PARTITION BY lpad(barcode, 13, '0') ORDER BY created_at, sku_code
                 ) AS n
          FROM skus WHERE barcode IS NOT NULL
        ) d
        WHERE d.sku_code = s.sku_code AND d.n = 1
        """
    )
    op.create_unique_constraint("uq_skus_gtin", "skus", ["gtin"])
    op.drop_constraint("uq_skus_barcode", "skus", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("uq_skus_barcode", "skus", ["barcode"])
    op.drop_constraint("uq_skus_gtin", "skus", type_="unique")
    op.drop_column("skus", "gtin")
