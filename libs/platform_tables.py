"""Tables every service keeps beside its own: the outbox, the inbox and processed requests.

Each service's first migration creates them with ``create_platform_tables``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

OUTBOX_BUCKETS = 16

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    # Rows of one key share a bucket; one relay at a time owns a bucket, so a key's events
    # leave in the order they were written even with several relays running.
    sa.Column("bucket", sa.SmallInteger, nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
    sa.Column("trace_context", JSONB, nullable=False, server_default="{}"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
)
sa.Index(
    "ix_outbox_unpublished",
    outbox.c.bucket,
    outbox.c.id,
    postgresql_where=outbox.c.published_at.is_(None),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column(
        "applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

processed_requests = sa.Table(
    "processed_requests",
    metadata,
    sa.Column("method", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.LargeBinary, nullable=False),
    sa.Column("response", sa.LargeBinary),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)


def create_platform_tables(op: Any) -> None:
    """Create the outbox, inbox and processed-requests tables (call from a migration)."""
    bind = op.get_bind()
    metadata.create_all(bind)


def drop_platform_tables(op: Any) -> None:
    metadata.drop_all(op.get_bind())


def outbox_insert_cte(first_parameter: int, name: str = "outbox_rows") -> str:
    """A CTE that writes outbox rows, for a hot path that puts its events into the same
    statement as its state change (no round trip of their own):

        WITH {outbox_insert_cte(3)} UPDATE counters SET n = n + 1 WHERE id = $1 AND ...

    Its seven parameters, from ``$first_parameter`` on, are ``outbox_columns(rows)``."""
    p = [f"${first_parameter + i}" for i in range(7)]
    return (
        f"{name} AS (INSERT INTO outbox (event_id, event_type, topic, key, bucket, envelope,"
        f" trace_context) SELECT * FROM unnest({p[0]}::uuid[], {p[1]}::text[], {p[2]}::text[],"
        f" {p[3]}::text[], {p[4]}::smallint[], {p[5]}::bytea[], {p[6]}::jsonb[]))"
    )


def outbox_columns(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The seven column arrays of ``outbox_insert_cte`` for rows made by
    ``libs.unit_of_work.outbox_row`` (jsonb as the connection's codec encodes it)."""
    return [
        [r[column] for r in rows]
        for column in (
            "event_id",
            "event_type",
            "topic",
            "key",
            "bucket",
            "envelope",
            "trace_context",
        )
    ]
