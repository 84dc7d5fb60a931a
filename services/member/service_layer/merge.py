"""Merging two records of one person: the explicit act that moves identities, points,
stored value and purchase history to the surviving member, and leaves a trail."""

from __future__ import annotations

from omni.member.v1 import events_pb2

from libs.errors import Validator
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.proto import now_timestamp
from services.member.adapters.tables import Row
from services.member.domain.members import MAX_REASON_LENGTH, Member, MemberState
from services.member.domain.points import PointsChangeKind, Tier, tier_after_spend
from services.member.domain.stored_value import StoredValueEntryKind
from services.member.service_layer import points, stored_value
from services.member.service_layer.members import require_usable
from services.member.service_layer.tiers import apply_tier


def validate_merge(surviving_member_id: str, merged_member_id: str, reason: str) -> None:
    v = Validator()
    v.check(bool(surviving_member_id), "surviving_member_id", "is required")
    v.check(bool(merged_member_id), "merged_member_id", "is required")
    v.check(
        surviving_member_id != merged_member_id,
        "merged_member_id",
        "must differ from surviving_member_id",
    )
    v.check(bool(reason.strip()), "reason", "is required")
    v.check(len(reason) <= MAX_REASON_LENGTH, "reason", f"at most {MAX_REASON_LENGTH} characters")
    v.raise_if_any()


async def merge_members(
    uow: UnitOfWork, surviving_member_id: str, merged_member_id: str, reason: str
) -> tuple[Member, Row]:
    """Moves everything of ``merged`` to ``surviving``: identities and purchase history are
    re-pointed; points and stored value move as a MERGE_OUT entry on one ledger and a
    MERGE_IN entry on the other (each ledger keeps summing to its balance); spend and order
    counts add up (the tier may rise). The merged member stays, marked MERGED with a pointer
    to the survivor, so old ids still resolve. The survivor keeps its own owner and consents
    (consent is never inferred)."""
    validate_merge(surviving_member_id, merged_member_id, reason)
    repo = MemberRepository(uow.session)
    # Lock both in id order so two merges of the same pair cannot deadlock.
    fields = {surviving_member_id: "surviving_member_id", merged_member_id: "merged_member_id"}
    locked: dict[str, Member] = {}
    for member_id in sorted((surviving_member_id, merged_member_id)):
        locked[member_id] = await require_usable(
            repo, member_id, lock=True, field=fields[member_id]
        )
    survivor, merged = locked[surviving_member_id], locked[merged_member_id]

    identities_moved = await repo.move_identities(merged.member_id, survivor.member_id)
    records_moved = await repo.move_purchase_history(merged.member_id, survivor.member_id)
    if merged.points_balance != 0:
        await points.change_points(
            uow,
            merged.member_id,
            PointsChangeKind.MERGE_OUT,
            -merged.points_balance,
            note=f"merged into {survivor.member_id}",
        )
        await points.change_points(
            uow,
            survivor.member_id,
            PointsChangeKind.MERGE_IN,
            merged.points_balance,
            note=f"merged from {merged.member_id}",
        )
    if merged.stored_value_minor:
        await stored_value.write_entry(
            uow,
            merged.member_id,
            StoredValueEntryKind.MERGE_OUT,
            -merged.stored_value_minor,
            0,
            reference=f"merged into {survivor.member_id}",
        )
        await stored_value.write_entry(
            uow,
            survivor.member_id,
            StoredValueEntryKind.MERGE_IN,
            merged.stored_value_minor,
            survivor.stored_value_minor + merged.stored_value_minor,
            reference=f"merged from {merged.member_id}",
        )
    last_purchases = [t for t in (survivor.last_purchase_at, merged.last_purchase_at) if t]
    spend = survivor.lifetime_spend_minor + merged.lifetime_spend_minor
    await repo.update(
        merged.member_id,
        state=int(MemberState.MERGED),
        merged_into=survivor.member_id,
        stored_value_minor=0,
        lifetime_spend_minor=0,
        order_count=0,
    )
    await repo.update(
        survivor.member_id,
        stored_value_minor=survivor.stored_value_minor + merged.stored_value_minor,
        lifetime_spend_minor=spend,
        order_count=survivor.order_count + merged.order_count,
        last_purchase_at=max(last_purchases) if last_purchases else None,
    )
    new_tier = tier_after_spend(Tier(max(survivor.tier, merged.tier)), spend)
    await apply_tier(uow, survivor.member_id, Tier(survivor.tier), new_tier)
    trail = await repo.add_merge_trail(
        surviving_member_id=survivor.member_id,
        merged_member_id=merged.member_id,
        reason=reason.strip(),
        points_moved=merged.points_balance,
        stored_value_moved_minor=merged.stored_value_minor,
        identities_moved=identities_moved,
        purchase_records_moved=records_moved,
    )
    uow.emit(
        events_pb2.MembersMergedEvent(
            merge_id=str(trail.merge_id),
            surviving_member_id=survivor.member_id,
            merged_member_id=merged.member_id,
            points_moved=merged.points_balance,
            stored_value_moved_minor=merged.stored_value_minor,
            merge_time=now_timestamp(),
        ),
        aggregate_id=survivor.member_id,
    )
    uow.after_commit(metrics.MEMBERS_MERGED.inc)
    return await repo.require(survivor.member_id), trail
