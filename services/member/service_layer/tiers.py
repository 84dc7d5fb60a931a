"""Tier changes: stored on the member and announced (MemberTierChangedEvent)."""

from __future__ import annotations

from omni.member.v1 import events_pb2

from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.proto import now_timestamp
from services.member.domain.points import Tier


async def apply_tier(uow: UnitOfWork, member_id: str, previous: Tier, tier: Tier) -> None:
    if tier == previous:
        return
    await MemberRepository(uow.session).set_tier(member_id, tier)
    uow.emit(
        events_pb2.MemberTierChangedEvent(
            member_id=member_id,
            previous_tier=int(previous),  # type: ignore[arg-type]
            tier=int(tier),  # type: ignore[arg-type]
            change_time=now_timestamp(),
        ),
        aggregate_id=member_id,
    )
    uow.after_commit(lambda: metrics.TIER_UPGRADES.labels(tier.name.lower()).inc())
