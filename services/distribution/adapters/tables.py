"""The distribution database's own tables (the schema is created by migrations/)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()


def _now() -> sa.Column[datetime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


org_units = sa.Table(
    "org_units",
    metadata,
    sa.Column("unit_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("parent_id", sa.Text, sa.ForeignKey("org_units.unit_id")),
    # "/HQ/PROVINCE/CITY/UNIT/": scope checks are prefix matches.
    sa.Column("path", sa.Text, nullable=False, unique=True),
    sa.Column("hq_id", sa.Text, nullable=False),
    sa.Column("province", sa.Text, nullable=False, server_default=""),
    sa.Column("city", sa.Text, nullable=False, server_default=""),
    sa.Column("location_id", sa.Text, unique=True),
    # [{"province": .., "city": ..}] for dealers.
    sa.Column("territories", JSONB, nullable=False, server_default="[]"),
    _now(),
)

staff = sa.Table(
    "staff",
    metadata,
    sa.Column("staff_id", sa.Text, primary_key=True),
    sa.Column("unit_id", sa.Text, sa.ForeignKey("org_units.unit_id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.SmallInteger, nullable=False),
    sa.Column("is_virtual", sa.Boolean, nullable=False, server_default=sa.false()),
    _now(),
)

# Projection of member's events: who owns each member (归属).
member_owners = sa.Table(
    "member_owners",
    metadata,
    sa.Column("member_id", sa.Text, primary_key=True),
    sa.Column("guide_staff_id", sa.Text, nullable=False),
    sa.Column("store_id", sa.Text, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

commission_rules = sa.Table(
    "commission_rules",
    metadata,
    sa.Column("hq_id", sa.Text, primary_key=True),
    sa.Column("flow", sa.SmallInteger, primary_key=True),
    sa.Column("role", sa.SmallInteger, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("rate_bp", sa.Integer),
    sa.Column("fixed_minor", sa.BigInteger),
    sa.Column("currency", sa.Text, nullable=False, server_default=""),
    sa.Column("saved_shipping_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
    _now(),
)

minimum_prices = sa.Table(
    "minimum_prices",
    metadata,
    sa.Column("hq_id", sa.Text, primary_key=True),
    sa.Column("sku_code", sa.Text, primary_key=True),
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("minimum_minor", sa.BigInteger, nullable=False),
    _now(),
)

# One row per completed order: proof it was applied once, and the facts statistics group by.
order_facts = sa.Table(
    "order_facts",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("hq_id", sa.Text, nullable=False),
    # The unit the order is credited to (its store, else the HQ): who may see it.
    sa.Column("scope_path", sa.Text, nullable=False),
    sa.Column("flow", sa.SmallInteger, nullable=False),
    sa.Column("channel_kind", sa.SmallInteger, nullable=False),
    sa.Column("guide_staff_id", sa.Text, nullable=False, server_default=""),
    sa.Column("store_id", sa.Text, nullable=False, server_default=""),
    sa.Column("province", sa.Text, nullable=False, server_default=""),
    sa.Column("city", sa.Text, nullable=False, server_default=""),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("total_minor", sa.BigInteger, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("commission_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    _now(),
)
sa.Index("ix_order_facts_hq_completed", order_facts.c.hq_id, order_facts.c.completed_at)

# Per order, role and line: what was paid and how much has come back.
commission_lines = sa.Table(
    "commission_lines",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("role", sa.SmallInteger, primary_key=True),
    sa.Column("line_id", sa.Text, primary_key=True),
    sa.Column("beneficiary_kind", sa.SmallInteger, nullable=False),
    sa.Column("beneficiary_id", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("paid_minor", sa.BigInteger, nullable=False),
    sa.Column("returned_quantity", sa.Integer, nullable=False, server_default="0"),
    sa.Column("clawed_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("paid_minor >= 0", name="ck_commission_lines_paid"),
    sa.CheckConstraint(
        "clawed_minor >= 0 AND clawed_minor <= paid_minor", name="ck_commission_lines_clawed"
    ),
)

applied_returns = sa.Table(
    "applied_returns",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("return_id", sa.Text, primary_key=True),
    _now(),
)

# The settlement ledger: statements are sums of these rows, never stored balances.
entries = sa.Table(
    "entries",
    metadata,
    sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("hq_id", sa.Text, nullable=False),
    sa.Column("beneficiary_kind", sa.SmallInteger, nullable=False),
    sa.Column("beneficiary_id", sa.Text, nullable=False),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("role", sa.SmallInteger, nullable=False),
    sa.Column("flow", sa.SmallInteger, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("return_id", sa.Text, nullable=False, server_default=""),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    _now(),
)
sa.Index(
    "ix_entries_statement",
    entries.c.beneficiary_kind,
    entries.c.beneficiary_id,
    entries.c.period,
    entries.c.currency,
    entries.c.entry_id,
)
sa.Index("ix_entries_hq_period", entries.c.hq_id, entries.c.period)

# Running totals per statement, kept by a statement-level trigger on entries (migration
# 0003) in the same transaction as the entries, whoever inserts them: a statement's totals
# are one row however many entries it has, and always equal the sum of its entries.
statement_totals = sa.Table(
    "statement_totals",
    metadata,
    sa.Column("beneficiary_kind", sa.SmallInteger, primary_key=True),
    sa.Column("beneficiary_id", sa.Text, primary_key=True),
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("commission_minor", sa.BigInteger, nullable=False),
    sa.Column("rebate_minor", sa.BigInteger, nullable=False),
    sa.Column("clawback_minor", sa.BigInteger, nullable=False),
    sa.Column("entry_count", sa.BigInteger, nullable=False),
)

closed_periods = sa.Table(
    "closed_periods",
    metadata,
    sa.Column("hq_id", sa.Text, primary_key=True),
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("closed_by", sa.Text, nullable=False),
    _now(),
)

# Totals frozen when a period closes.
statements = sa.Table(
    "statements",
    metadata,
    sa.Column("beneficiary_kind", sa.SmallInteger, primary_key=True),
    sa.Column("beneficiary_id", sa.Text, primary_key=True),
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("hq_id", sa.Text, nullable=False),
    sa.Column("commission_minor", sa.BigInteger, nullable=False),
    sa.Column("rebate_minor", sa.BigInteger, nullable=False),
    sa.Column("clawback_minor", sa.BigInteger, nullable=False),
    sa.Column("net_minor", sa.BigInteger, nullable=False),
    sa.Column("entry_count", sa.BigInteger, nullable=False),
    _now(),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Column("hq_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("dealer_id", sa.Text, nullable=False),
    sa.Column("dealer_path", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("evidence", JSONB, nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolution_note", sa.Text, nullable=False, server_default=""),
    sa.Column("resolved_by", sa.Text, nullable=False, server_default=""),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_alerts_scope", alerts.c.dealer_path, alerts.c.raised_at)

# A row as repositories hand it out (the servicer maps it to protobuf).
Row = sa.Row[tuple[object, ...]]
