"""The gateway's tables (SQLAlchemy Core); created by migrations/versions/0002_gateway.py."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("channel_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("connector", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("rate_per_second", sa.Integer, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
    sa.Column("push_endpoint", sa.Text, nullable=False),
    sa.Column("stock_channel", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("owner_kind", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text, nullable=False),
    sa.Column("channel_id", sa.Text, sa.ForeignKey("channels.channel_id"), nullable=False),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False),
    # HMAC needs the secret itself on our side; it leaves the database only to verify.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("rate_per_second", sa.Integer, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# One row per (key, nonce) seen within the replay window: the primary key makes every
# replica agree that a nonce was used.
request_nonces = sa.Table(
    "request_nonces",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("nonce", sa.Text, primary_key=True),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("bucket_key", sa.Text, primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

inbound_payloads = sa.Table(
    "inbound_payloads",
    metadata,
    sa.Column("payload_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("channel_id", sa.Text, nullable=False),
    sa.Column("route", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column(
        "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("outcome", sa.Text, nullable=False, server_default="received"),
    sa.Column("http_status", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    # Whether the sender proved who it is (migration 0007); unauthenticated rows are cut
    # short and purged after a TTL (service_layer/inbound.py).
    sa.Column("authenticated", sa.Boolean, nullable=False, server_default=sa.false()),
)
sa.Index(
    "ix_inbound_payloads_channel", inbound_payloads.c.channel_id, inbound_payloads.c.payload_id
)
sa.Index(
    "ix_inbound_payloads_unauthenticated",
    inbound_payloads.c.received_at,
    postgresql_where=sa.not_(inbound_payloads.c.authenticated),
)

channel_orders = sa.Table(
    "channel_orders",
    metadata,
    sa.Column("channel_id", sa.Text, primary_key=True),
    sa.Column("channel_order_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False, unique=True),
    sa.Column("order_proto", sa.LargeBinary, nullable=False),
    sa.Column("partner_id", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("payload_id", sa.BigInteger),
    sa.Column(
        "accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Local-life vouchers (migration 0005): the code's digest, and the redemption.
    sa.Column("voucher_code_sha256", sa.Text, nullable=False, server_default=""),
    sa.Column("redeemed_at", sa.DateTime(timezone=True)),
    sa.Column("redeemed_store_id", sa.Text, nullable=False, server_default=""),
    sa.Column("redeemed_by", sa.Text, nullable=False, server_default=""),
)

channel_returns = sa.Table(
    "channel_returns",
    metadata,
    sa.Column("channel_id", sa.Text, primary_key=True),
    sa.Column("return_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("receiving_location_id", sa.Text, nullable=False),
    sa.Column("lines", JSONB, nullable=False),
    sa.Column(
        "accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

outbound_pushes = sa.Table(
    "outbound_pushes",
    metadata,
    sa.Column("push_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("channel_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    # Facts known when queued (order status, price...); stock is read fresh at push time.
    sa.Column("facts", JSONB, nullable=False, server_default="{}"),
    # Bumped by every coalesced change; a push acknowledged for an older version stays due.
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    # W3C trace context of the (first) event that queued the push: the push joins its trace.
    sa.Column("trace_context", JSONB, nullable=False, server_default="{}"),
)
# At most one pending push per (channel, kind, subject): a burst coalesces into it.
sa.Index(
    "uq_outbound_pushes_pending",
    outbound_pushes.c.channel_id,
    outbound_pushes.c.kind,
    outbound_pushes.c.subject,
    unique=True,
    postgresql_where=outbound_pushes.c.status == "pending",
)
sa.Index(
    "ix_outbound_pushes_due",
    outbound_pushes.c.next_attempt_at,
    postgresql_where=outbound_pushes.c.status == "pending",
)
# The lag gauge (migration 0006): unacknowledged pushes per channel; a subject's history.
sa.Index(
    "ix_outbound_pushes_unacknowledged",
    outbound_pushes.c.channel_id,
    outbound_pushes.c.event_time,
    postgresql_where=outbound_pushes.c.status.in_(("pending", "dead")),
)
sa.Index(
    "ix_outbound_pushes_subject",
    outbound_pushes.c.channel_id,
    outbound_pushes.c.kind,
    outbound_pushes.c.subject,
    outbound_pushes.c.push_id,
)
