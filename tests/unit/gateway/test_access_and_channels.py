"""Scopes, ownership and channel configuration rules."""

from __future__ import annotations

import pytest

from libs.errors import InvalidArgument, PermissionDenied
from services.gateway.domain.access import Caller, require_owner, require_scope
from services.gateway.domain.channels import ChannelConfig, validate_channel, validate_credential


def partner(owner: str, *scopes: str) -> Caller:
    return Caller("k", "partner", owner, "DIST", frozenset(scopes))


def test_a_partner_reads_only_its_own_orders() -> None:
    require_owner(partner("D1"), "DIST", "D1")
    with pytest.raises(PermissionDenied):
        require_owner(partner("D2"), "DIST", "D1")


def test_a_channel_key_reads_its_channel_orders_only() -> None:
    key = Caller("k", "channel", "MALL", "MALL", frozenset())
    require_owner(key, "MALL", "")
    with pytest.raises(PermissionDenied):
        require_owner(key, "OTHER", "")


def test_scope_is_required() -> None:
    require_scope(partner("D", "orders:read"), "orders:read")
    with pytest.raises(PermissionDenied):
        require_scope(partner("D", "orders:read"), "orders:write")


def config(**changes: object) -> ChannelConfig:
    base = dict(
        channel_id="TMALL-1",
        kind="marketplace",
        connector="tmall",
        status="",
        rate_per_second=0,
        burst=0,
        push_endpoint="",
        stock_channel="",
    )
    base.update(changes)
    return ChannelConfig(**base)  # type: ignore[arg-type]


def test_defaults_fill_in() -> None:
    valid = validate_channel(config())
    assert valid.status == "active"
    assert valid.stock_channel == "TMALL-1"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel_id": ""}, "channel.channel_id"),
        ({"kind": "store"}, "channel.connector"),
        ({"connector": "nope"}, "channel.connector"),
        ({"push_endpoint": "ftp://x"}, "channel.push_endpoint"),
        ({"rate_per_second": -1}, "channel.rate_limit_per_second"),
    ],
)
def test_bad_channel_config_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_channel(config(**changes))
    assert field in [v.field for v in caught.value.violations]


def test_credential_rules() -> None:
    validate_credential("partner", "D1", "DIST", ["orders:read"], 0, 0)
    with pytest.raises(InvalidArgument) as caught:
        validate_credential("channel", "OTHER", "MALL", ["nope"], 0, 0)
    assert {v.field for v in caught.value.violations} == {"owner_id", "scopes"}
