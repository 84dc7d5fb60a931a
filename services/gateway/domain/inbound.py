"""What the gateway keeps of inbound traffic: stored payloads and accepted channel orders,
and the rules about their outcomes and statuses (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from omni.order.v1 import order_pb2


@dataclass(frozen=True)
class StoredPayload:
    payload_id: int
    channel_id: str
    route: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    outcome: str
    http_status: int
    error: str


@dataclass(frozen=True)
class AcceptedOrder:
    channel_id: str
    channel_order_id: str
    order_id: str
    order: order_pb2.Order
    partner_id: str
    status: str
    accepted_at: datetime
    created: bool


# Where a channel order is in its life, as the channel sees it; a status only moves forward.
STATUS_RANK = {
    "accepted": 0,
    "shipped": 1,
    "ready_for_pickup": 1,
    "consumed": 2,
    "completed": 3,
    "returned": 4,
    "cancelled": 4,
}


def later_than(status: str) -> list[str]:
    rank = STATUS_RANK.get(status, 0)
    return [s for s, r in STATUS_RANK.items() if r > rank]


def outcome_for(status: int) -> str:
    if status < 400:
        return "accepted"
    return "rejected" if status < 500 else "failed"


def result_for(status: int, duplicate: bool) -> str:
    """accepted | duplicate | rejected | failed (the label of INBOUND_PAYLOADS)."""
    outcome = outcome_for(status)
    return "duplicate" if outcome == "accepted" and duplicate else outcome


# A payload whose sender never proved who it is (bad signature, unknown key or route) is
# kept for inspection, but bounded: its body cut to this many bytes, and the row deleted
# after UNAUTHENTICATED_TTL_SECONDS — so a flood of forged requests cannot grow the table
# without limit. Authenticated payloads (and any still "received", i.e. interrupted) are
# kept whole and never purged.
UNAUTHENTICATED_BODY_BYTES = 4096
UNAUTHENTICATED_TTL_SECONDS = 86_400.0


@dataclass(frozen=True)
class OrderTaken:
    """What a channel is told about its order: the platform's id, the gateway status, and
    whether this payload created it (201) or found it taken before (200, duplicate)."""

    channel_order_id: str
    order_id: str
    partner_id: str
    status: str
    created: bool
