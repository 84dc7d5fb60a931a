"""Channels and their credentials: configuration the rest of the gateway reads. A change
that can refuse traffic (revoke, suspend, a new rate) is forgotten by this replica's cache
once committed (service_layer/directory.py says what the other replicas see, and when)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from libs.errors import AlreadyExists, InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.gateway.adapters import channel_store
from services.gateway.domain.channels import (
    STATUSES,
    Channel,
    ChannelConfig,
    CredentialRow,
    validate_channel,
    validate_credential,
    validate_endpoint,
    validate_rate,
)
from services.gateway.service_layer.directory import Directory

__all__ = ["Channel", "CredentialRow"]


async def create_channel(uow: UnitOfWork, config: ChannelConfig) -> Channel:
    config = validate_channel(config)
    created = await channel_store.insert_channel(uow.session, config)
    if created is None:
        raise AlreadyExists(f"channel {config.channel_id} already exists")
    return created


async def find_channel(session: AsyncSession, channel_id: str) -> Channel | None:
    return await channel_store.find_channel(session, channel_id)


async def get_channel(session: AsyncSession, channel_id: str) -> Channel:
    found = await channel_store.find_channel(session, channel_id)
    if found is None:
        raise NotFound(f"channel {channel_id} not found")
    return found


async def list_channels(session: AsyncSession, after: str, limit: int) -> list[Channel]:
    return await channel_store.list_channels(session, after, limit)


async def update_channel(
    uow: UnitOfWork,
    channel_id: str,
    status: str,
    rate: int,
    burst: int,
    push_endpoint: str | None,
    directory: Directory | None = None,
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
    updated = await channel_store.update_channel(uow.session, channel_id, values)
    if updated is None:
        raise NotFound(f"channel {channel_id} not found")
    if directory is not None:
        uow.after_commit(lambda: directory.forget_channel(channel_id))
    return updated


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
    if await channel_store.find_channel(uow.session, channel_id) is None:
        raise InvalidArgument.field("channel_id", f"channel {channel_id} does not exist")
    key_id = f"k_{secrets.token_hex(10)}"
    secret = secrets.token_urlsafe(32)
    cred = await channel_store.insert_credential(
        uow.session, key_id, secret, owner_kind, owner_id, channel_id, scopes, rate, burst
    )
    return cred, secret


async def revoke_credential(
    uow: UnitOfWork, key_id: str, directory: Directory | None = None
) -> CredentialRow:
    revoked = await channel_store.revoke_credential(uow.session, key_id)
    if revoked is None:
        raise NotFound(f"credential {key_id} not found")
    if directory is not None:
        uow.after_commit(lambda: directory.forget_key(key_id))
    return revoked


async def list_credentials(
    session: AsyncSession, channel_id: str, after: str, limit: int
) -> list[CredentialRow]:
    return await channel_store.list_credentials(session, channel_id, after, limit)


async def load_key(session: AsyncSession, key_id: str) -> tuple[CredentialRow, str] | None:
    """The credential and its secret, for a signature check only."""
    return await channel_store.load_key(session, key_id)
