"""Channels and their credentials: configuration the rest of the gateway reads."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.errors import AlreadyExists, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.gateway.adapters.tables import channels, credentials
from services.gateway.domain.channels import (
    STATUSES,
    ChannelConfig,
    validate_channel,
    validate_credential,
    validate_endpoint,
    validate_rate,
)


@dataclass(frozen=True)
class Channel:
    config: ChannelConfig
    created_at: datetime


@dataclass(frozen=True)
class CredentialRow:
    key_id: str
    owner_kind: str
    owner_id: str
    channel_id: str
    scopes: tuple[str, ...]
    rate_per_second: int
    burst: int
    revoked: bool
    created_at: datetime


def _channel(row: sa.Row[tuple[object, ...]]) -> Channel:
    m = row._mapping
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


def _credential(row: sa.Row[tuple[object, ...]]) -> CredentialRow:
    m = row._mapping
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


async def create_channel(uow: UnitOfWork, config: ChannelConfig) -> Channel:
    config = validate_channel(config)
    row = (
        await uow.session.execute(
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
    if row is None:
        raise AlreadyExists(f"channel {config.channel_id} already exists")
    return _channel(row)


async def find_channel(session: AsyncSession, channel_id: str) -> Channel | None:
    row = (
        await session.execute(sa.select(channels).where(channels.c.channel_id == channel_id))
    ).first()
    return None if row is None else _channel(row)


async def get_channel(session: AsyncSession, channel_id: str) -> Channel:
    found = await find_channel(session, channel_id)
    if found is None:
        raise NotFound(f"channel {channel_id} not found")
    return found


async def list_channels(session: AsyncSession, after: str, limit: int) -> list[Channel]:
    rows = await session.execute(
        sa.select(channels)
        .where(channels.c.channel_id > after)
        .order_by(channels.c.channel_id)
        .limit(limit)
    )
    return [_channel(r) for r in rows]


async def update_channel(
    uow: UnitOfWork, channel_id: str, status: str, rate: int, burst: int, push_endpoint: str | None
) -> Channel:
    """Change what is given: an empty status keeps the status; rates are replaced (0 = the
    defaults); ``push_endpoint`` None keeps it."""
    v = Validator()
    v.check(status in ("", *STATUSES), "status", "is not a known status")
    validate_rate(rate, burst, "", v)
    if push_endpoint:
        validate_endpoint(push_endpoint, "push_endpoint", v)
    v.raise_if_any()
    values: dict[str, object] = {"rate_per_second": rate, "burst": burst}
    if status:
        values["status"] = status
    if push_endpoint is not None:
        values["push_endpoint"] = push_endpoint
    row = (
        await uow.session.execute(
            channels.update()
            .where(channels.c.channel_id == channel_id)
            .values(**values)
            .returning(*channels.c)
        )
    ).first()
    if row is None:
        raise NotFound(f"channel {channel_id} not found")
    return _channel(row)


async def issue_credential(
    uow: UnitOfWork,
    owner_kind: str,
    owner_id: str,
    channel_id: str,
    scopes: Sequence[str],
    rate: int,
    burst: int,
) -> tuple[CredentialRow, str]:
    """A new key id and secret; the secret is returned here and never again."""
    validate_credential(owner_kind, owner_id, channel_id, scopes, rate, burst)
    if await find_channel(uow.session, channel_id) is None:
        raise InvalidArgument.field("channel_id", f"channel {channel_id} does not exist")
    key_id = f"k_{secrets.token_hex(10)}"
    secret = secrets.token_urlsafe(32)
    row = (
        await uow.session.execute(
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
    return _credential(row), secret


async def revoke_credential(uow: UnitOfWork, key_id: str) -> CredentialRow:
    row = (
        await uow.session.execute(
            credentials.update()
            .where(credentials.c.key_id == key_id)
            .values(revoked=True)
            .returning(*credentials.c)
        )
    ).first()
    if row is None:
        raise NotFound(f"credential {key_id} not found")
    return _credential(row)


async def list_credentials(
    session: AsyncSession, channel_id: str, after: str, limit: int
) -> list[CredentialRow]:
    query = sa.select(credentials).where(credentials.c.key_id > after)
    if channel_id:
        query = query.where(credentials.c.channel_id == channel_id)
    rows = await session.execute(query.order_by(credentials.c.key_id).limit(limit))
    return [_credential(r) for r in rows]


async def load_key(session: AsyncSession, key_id: str) -> tuple[CredentialRow, str] | None:
    """The credential and its secret, for a signature check only."""
    row = (
        await session.execute(sa.select(credentials).where(credentials.c.key_id == key_id))
    ).first()
    if row is None:
        return None
    return _credential(row), row._mapping["secret"]
