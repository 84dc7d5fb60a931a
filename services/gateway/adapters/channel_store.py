"""Channels and credentials in the gateway's database: SQLAlchemy for the administration
RPCs (cold), one asyncpg statement for the key lookup of the inbound path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.pg import Pg
from services.gateway.adapters.tables import channels, credentials
from services.gateway.domain.channels import Channel, ChannelConfig, CredentialRow


def channel_of(m: Any) -> Channel:
    return Channel(
        ChannelConfig(
            m["channel_id"],
            m["kind"],
            m["connector"],
            m["status"],
            m["rate_per_second"],
            m["burst"],
            m["push_endpoint"],
            m["stock_channel"],
        ),
        m["created_at"],
    )


def credential_of(m: Any) -> CredentialRow:
    return CredentialRow(
        m["key_id"],
        m["owner_kind"],
        m["owner_id"],
        m["channel_id"],
        tuple(m["scopes"]),
        m["rate_per_second"],
        m["burst"],
        m["revoked"],
        m["created_at"],
    )


async def insert_channel(session: AsyncSession, config: ChannelConfig) -> Channel | None:
    """None when the channel id is taken."""
    row = (
        await session.execute(
            insert(channels)
            .values(
                channel_id=config.channel_id,
                kind=config.kind,
                connector=config.connector,
                status=config.status,
                rate_per_second=config.rate_per_second,
                burst=config.burst,
                push_endpoint=config.push_endpoint,
                stock_channel=config.stock_channel,
            )
            .on_conflict_do_nothing()
            .returning(*channels.c)
        )
    ).first()
    return None if row is None else channel_of(row._mapping)


async def find_channel(session: AsyncSession, channel_id: str) -> Channel | None:
    row = (
        await session.execute(sa.select(channels).where(channels.c.channel_id == channel_id))
    ).first()
    return None if row is None else channel_of(row._mapping)


async def list_channels(session: AsyncSession, after: str, limit: int) -> list[Channel]:
    rows = await session.execute(
        sa.select(channels)
        .where(channels.c.channel_id > after)
        .order_by(channels.c.channel_id)
        .limit(limit)
    )
    return [channel_of(r._mapping) for r in rows]


async def update_channel(
    session: AsyncSession, channel_id: str, values: dict[str, object]
) -> Channel | None:
    row = (
        await session.execute(
            channels.update()
            .where(channels.c.channel_id == channel_id)
            .values(**values)
            .returning(*channels.c)
        )
    ).first()
    return None if row is None else channel_of(row._mapping)


async def insert_credential(
    session: AsyncSession,
    key_id: str,
    secret: str,
    owner_kind: str,
    owner_id: str,
    channel_id: str,
    scopes: Sequence[str],
    rate: int,
    burst: int,
) -> CredentialRow:
    row = (
        await session.execute(
            credentials.insert()
            .values(
                key_id=key_id,
                owner_kind=owner_kind,
                owner_id=owner_id,
                channel_id=channel_id,
                scopes=sorted(set(scopes)),
                secret=secret,
                rate_per_second=rate,
                burst=burst,
            )
            .returning(*credentials.c)
        )
    ).one()
    return credential_of(row._mapping)


async def revoke_credential(session: AsyncSession, key_id: str) -> CredentialRow | None:
    row = (
        await session.execute(
            credentials.update()
            .where(credentials.c.key_id == key_id)
            .values(revoked=True)
            .returning(*credentials.c)
        )
    ).first()
    return None if row is None else credential_of(row._mapping)


async def list_credentials(
    session: AsyncSession, channel_id: str, after: str, limit: int
) -> list[CredentialRow]:
    query = sa.select(credentials).where(credentials.c.key_id > after)
    if channel_id:
        query = query.where(credentials.c.channel_id == channel_id)
    rows = await session.execute(query.order_by(credentials.c.key_id).limit(limit))
    return [credential_of(r._mapping) for r in rows]


async def load_key(session: AsyncSession, key_id: str) -> tuple[CredentialRow, str] | None:
    """The credential and its secret, for a signature check only."""
    row = (
        await session.execute(sa.select(credentials).where(credentials.c.key_id == key_id))
    ).first()
    if row is None:
        return None
    return credential_of(row._mapping), row._mapping["secret"]


# The credential, its secret and its channel in one round trip (cache fill).
_LOAD_KEY = """
SELECT k.key_id, k.owner_kind, k.owner_id, k.channel_id, k.scopes, k.secret,
       k.rate_per_second AS key_rate, k.burst AS key_burst, k.revoked,
       k.created_at AS key_created_at,
       c.kind, c.connector, c.status, c.rate_per_second, c.burst, c.push_endpoint,
       c.stock_channel, c.created_at
FROM credentials k JOIN channels c ON c.channel_id = k.channel_id
WHERE k.key_id = $1
"""


async def load_key_and_channel(pg: Pg, key_id: str) -> tuple[CredentialRow, str, Channel] | None:
    async with pg.connection() as conn:
        row = await conn.fetchrow(_LOAD_KEY, key_id)
    if row is None:
        return None
    cred = CredentialRow(
        row["key_id"],
        row["owner_kind"],
        row["owner_id"],
        row["channel_id"],
        tuple(row["scopes"]),
        row["key_rate"],
        row["key_burst"],
        row["revoked"],
        row["key_created_at"],
    )
    return cred, row["secret"], channel_of(row)
