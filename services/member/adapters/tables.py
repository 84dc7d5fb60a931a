"""The member database's own tables (created by migrations/versions/0002_members.py)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

metadata = sa.MetaData()

members = sa.Table(
    "members",
    metadata,
    sa.Column("member_id", sa.Text, primary_key=True),
    sa.Column("phone", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("source", sa.SmallInteger, nullable=False),
    sa.Column("distributor_id", sa.Text, nullable=False),
    sa.Column("owner_guide_staff_id", sa.Text, nullable=False),
    sa.Column("owner_store_id", sa.Text, nullable=False),
    sa.Column("tier", sa.SmallInteger, nullable=False),
    sa.Column("points_balance", sa.BigInteger, nullable=False),
    sa.Column("stored_value_minor", sa.BigInteger, nullable=False),
    sa.Column("lifetime_spend_minor", sa.BigInteger, nullable=False),
    sa.Column("order_count", sa.Integer, nullable=False),
    sa.Column("last_purchase_at", sa.DateTime(timezone=True)),
    sa.Column("consents", ARRAY(sa.SmallInteger), nullable=False),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("merged_into", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

member_identities = sa.Table(
    "member_identities",
    metadata,
    sa.Column("kind", sa.SmallInteger, primary_key=True),
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("external_id", sa.Text, primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
)

ownership_changes = sa.Table(
    "ownership_changes",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("previous_owner_guide_staff_id", sa.Text, nullable=False),
    sa.Column("owner_guide_staff_id", sa.Text, nullable=False),
    sa.Column("owner_store_id", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

points_entries = sa.Table(
    "points_entries",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("return_id", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

stored_value_entries = sa.Table(
    "stored_value_entries",
    metadata,
    sa.Column("entry_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("payment_entry_id", UUID(as_uuid=True)),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

purchase_history = sa.Table(
    "purchase_history",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("return_id", sa.Text, nullable=False),
    sa.Column("channel_id", sa.Text, nullable=False),
    sa.Column("channel_kind", sa.SmallInteger, nullable=False),
    sa.Column("store_id", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("categories", ARRAY(sa.Text), nullable=False),
    sa.Column("points_delta", sa.BigInteger, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
)

member_merges = sa.Table(
    "member_merges",
    metadata,
    sa.Column("merge_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("surviving_member_id", sa.Text, nullable=False),
    sa.Column("merged_member_id", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("points_moved", sa.BigInteger, nullable=False),
    sa.Column("stored_value_moved_minor", sa.BigInteger, nullable=False),
    sa.Column("identities_moved", sa.Integer, nullable=False),
    sa.Column("purchase_records_moved", sa.Integer, nullable=False),
    sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
)

spent_member_codes = sa.Table(
    "spent_member_codes",
    metadata,
    sa.Column("code_id", sa.Text, primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per category of each completed order (a projection of purchase_history).
purchase_categories = sa.Table(
    "purchase_categories",
    metadata,
    sa.Column("history_id", sa.BigInteger, primary_key=True),
    sa.Column("category", sa.Text, primary_key=True),
    sa.Column("member_id", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
)

# A row as repositories hand it out (the servicer maps it to protobuf).
Row = sa.Row[tuple[object, ...]]
