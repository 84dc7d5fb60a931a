"""Channel configuration rules: which connectors fit which kind of channel, and what a
valid configuration looks like."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

from libs.errors import Validator
from services.gateway.domain.access import unknown_scopes

KINDS = ("own_online", "marketplace", "store", "distribution", "local_life")
CONNECTORS = ("pos", "web_mall", "tmall", "jd", "distributor_shop", "local_life")
STATUSES = ("active", "suspended")

# A connector serves one kind of channel (a POS is a store, Tmall a marketplace...).
CONNECTOR_KIND = {
    "pos": "store",
    "web_mall": "own_online",
    "tmall": "marketplace",
    "jd": "marketplace",
    "distributor_shop": "distribution",
    "local_life": "local_life",
}

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_RATE = 100_000


@dataclass(frozen=True)
class ChannelConfig:
    channel_id: str
    kind: str
    connector: str
    status: str
    rate_per_second: int
    burst: int
    push_endpoint: str
    stock_channel: str


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


def validate_endpoint(endpoint: str, field: str, v: Validator) -> None:
    if not endpoint:
        return
    parsed = urlparse(endpoint)
    v.check(
        parsed.scheme in ("http", "https") and bool(parsed.netloc),
        field,
        "must be an http(s) URL",
    )


def validate_rate(rate: int, burst: int, prefix: str, v: Validator) -> None:
    v.check(0 <= rate <= MAX_RATE, f"{prefix}rate_limit_per_second", f"must be 0..{MAX_RATE}")
    v.check(0 <= burst <= MAX_RATE, f"{prefix}rate_limit_burst", f"must be 0..{MAX_RATE}")


def validate_channel(c: ChannelConfig) -> ChannelConfig:
    """A new channel: id shape, a known kind and connector that belong together."""
    v = Validator()
    v.check(
        bool(ID_PATTERN.match(c.channel_id)),
        "channel.channel_id",
        "must be 1-64 of A-Z a-z 0-9 _ . : -",
    )
    v.check(c.kind in KINDS, "channel.kind", "is required")
    v.check(c.connector in CONNECTORS, "channel.connector", "is required")
    if c.kind in KINDS and c.connector in CONNECTORS:
        v.check(
            CONNECTOR_KIND[c.connector] == c.kind,
            "channel.connector",
            f"{c.connector} serves {CONNECTOR_KIND[c.connector]} channels, not {c.kind}",
        )
    validate_rate(c.rate_per_second, c.burst, "channel.", v)
    validate_endpoint(c.push_endpoint, "channel.push_endpoint", v)
    if c.stock_channel:
        v.check(
            bool(ID_PATTERN.match(c.stock_channel)), "channel.stock_channel", "is not a valid id"
        )
    v.raise_if_any()
    return ChannelConfig(
        c.channel_id,
        c.kind,
        c.connector,
        c.status if c.status in STATUSES else "active",
        c.rate_per_second,
        c.burst,
        c.push_endpoint,
        c.stock_channel or c.channel_id,
    )


def validate_credential(
    owner_kind: str, owner_id: str, channel_id: str, scopes: Collection[str], rate: int, burst: int
) -> None:
    v = Validator()
    v.check(owner_kind in ("channel", "partner"), "owner_kind", "is required")
    v.check(bool(ID_PATTERN.match(owner_id)), "owner_id", "must be 1-64 of A-Z a-z 0-9 _ . : -")
    v.check(bool(channel_id), "channel_id", "is required")
    if owner_kind == "channel":
        v.check(owner_id == channel_id, "owner_id", "must be the channel id for a channel key")
    v.check(bool(scopes), "scopes", "at least one scope is required")
    bad = unknown_scopes(scopes)
    v.check(not bad, "scopes", f"unknown scopes: {', '.join(bad)}")
    validate_rate(rate, burst, "", v)
    v.raise_if_any()
