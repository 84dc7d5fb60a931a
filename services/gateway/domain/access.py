"""Who may do what through the gateway: scopes on keys, and partners seeing only their own."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from libs.errors import PermissionDenied

SCOPES: frozenset[str] = frozenset(
    {
        "orders:write",
        "members:write",
        "orders:read",
        "catalog:read",
        "availability:read",
        "returns:write",
        "members:read",
        "fulfilments:write",
    }
)


@dataclass(frozen=True)
class Caller:
    """The authenticated key behind a request."""

    key_id: str
    owner_kind: str  # "channel" | "partner"
    owner_id: str
    channel_id: str
    scopes: frozenset[str]


def require_scope(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes:
        raise PermissionDenied(f"key {caller.key_id} lacks scope {scope}")


def require_channel(caller: Caller, channel_id: str) -> None:
    """A channel key acts only for its own channel."""
    if caller.channel_id != channel_id:
        raise PermissionDenied(f"key {caller.key_id} does not act for channel {channel_id}")


def require_owner(caller: Caller, channel_id: str, partner_id: str) -> None:
    """An order is readable by its channel's keys; a partner reads only orders it submitted
    (one distributor never sees another's orders, even on a shared channel)."""
    if caller.owner_kind == "partner":
        if partner_id != caller.owner_id:
            raise PermissionDenied("the order belongs to another partner")
    elif caller.channel_id != channel_id:
        raise PermissionDenied("the order belongs to another channel")


def unknown_scopes(scopes: Collection[str]) -> list[str]:
    return sorted(s for s in scopes if s not in SCOPES)
