"""Domain objects and rows ↔ omni.member.v1 protobuf messages. Personal data is masked
here unless the caller may read it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import money_pb2
from omni.member.v1 import member_pb2

from libs.errors import Validator
from libs.proto_input import optional_timestamp as timestamp
from services.member.domain.members import ID_PATTERN, Identity, Member, validate_identity
from services.member.domain.points import PLATFORM_CURRENCY, Tier
from services.member.domain.privacy import mask_name, mask_phone
from services.member.domain.segments import (
    MAX_CONDITIONS,
    Condition,
    RfmGroup,
    SegmentRule,
    validate_category_purchase,
)

Row = sa.Row[tuple[object, ...]]


def now_timestamp() -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return ts


def money(amount_minor: int, currency: str = PLATFORM_CURRENCY) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount_minor)


def member_to_proto(member: Member, *, reveal_pii: bool) -> member_pb2.Member:
    return member_pb2.Member(
        member_id=member.member_id,
        phone=member.phone if reveal_pii else mask_phone(member.phone),
        name=member.name if reveal_pii else mask_name(member.name),
        pii_masked=not reveal_pii,
        source=int(member.source),  # type: ignore[arg-type]
        distributor_id=member.distributor_id,
        owner_guide_staff_id=member.owner_guide_staff_id,
        owner_store_id=member.owner_store_id,
        tier=member.tier,  # type: ignore[arg-type]
        points_balance=member.points_balance,
        stored_value_balance=money(member.stored_value_minor),
        consents=sorted(int(c) for c in member.consents),  # type: ignore[misc]
        identities=[
            member_pb2.ChannelIdentity(
                kind=int(i.kind),  # type: ignore[arg-type]
                namespace=i.namespace,
                external_id=i.external_id if reveal_pii else mask_name(i.external_id),
                bind_time=timestamp(i.bound_at),
            )
            for i in member.identities
        ],
        state=int(member.state),  # type: ignore[arg-type]
        merged_into_member_id=member.merged_into or "",
        lifetime_spend=money(member.lifetime_spend_minor),
        order_count=member.order_count,
        last_purchase_time=timestamp(member.last_purchase_at),
        register_time=timestamp(member.created_at),
    )


def points_entry_to_proto(row: Row) -> member_pb2.PointsEntry:
    m: Any = row._mapping
    return member_pb2.PointsEntry(
        entry_id=str(m["id"]),
        member_id=m["member_id"],
        kind=m["kind"],
        delta=m["delta"],
        balance_after=m["balance_after"],
        order_id=m["order_id"],
        return_id=m["return_id"],
        note=m["note"],
        create_time=timestamp(m["created_at"]),
    )


def stored_value_entry_to_proto(row: Row) -> member_pb2.StoredValueEntry:
    m: Any = row._mapping
    return member_pb2.StoredValueEntry(
        entry_id=str(m["entry_id"]),
        member_id=m["member_id"],
        kind=m["kind"],
        amount=money(m["amount_minor"]),
        balance_after=money(m["balance_after"]),
        payment_entry_id=str(m["payment_entry_id"] or ""),
        reference=m["reference"],
        create_time=timestamp(m["created_at"]),
    )


def ownership_change_to_proto(row: Row) -> member_pb2.OwnershipChange:
    m: Any = row._mapping
    return member_pb2.OwnershipChange(
        member_id=m["member_id"],
        previous_owner_guide_staff_id=m["previous_owner_guide_staff_id"],
        owner_guide_staff_id=m["owner_guide_staff_id"],
        owner_store_id=m["owner_store_id"],
        reason=m["reason"],
        change_time=timestamp(m["changed_at"]),
    )


def purchase_to_proto(row: Row) -> member_pb2.PurchaseRecord:
    m: Any = row._mapping
    return member_pb2.PurchaseRecord(
        kind=m["kind"],
        order_id=m["order_id"],
        return_id=m["return_id"],
        channel_id=m["channel_id"],
        channel_kind=m["channel_kind"],
        store_id=m["store_id"],
        amount=money(m["amount_minor"], m["currency_code"]),
        category_codes=list(m["categories"]),
        points_delta=m["points_delta"],
        occur_time=timestamp(m["occurred_at"]),
    )


def merge_to_proto(row: Row) -> member_pb2.MemberMerge:
    m: Any = row._mapping
    return member_pb2.MemberMerge(
        merge_id=str(m["merge_id"]),
        surviving_member_id=m["surviving_member_id"],
        merged_member_id=m["merged_member_id"],
        reason=m["reason"],
        points_moved=m["points_moved"],
        stored_value_moved=money(m["stored_value_moved_minor"]),
        identities_moved=m["identities_moved"],
        purchase_records_moved=m["purchase_records_moved"],
        merge_time=timestamp(m["merged_at"]),
    )


def identity_from_proto(
    v: Validator, identity: member_pb2.ChannelIdentity, prefix: str
) -> Identity | None:
    return validate_identity(
        v, int(identity.kind), identity.namespace.strip(), identity.external_id, prefix
    )


def rule_from_proto(rule: member_pb2.SegmentRule) -> SegmentRule:
    """A validated segment rule; InvalidArgument names each bad condition field."""
    v = Validator()
    v.check(len(rule.all_of) > 0, "rule.all_of", "needs at least one condition")
    v.check(len(rule.all_of) <= MAX_CONDITIONS, "rule.all_of", f"at most {MAX_CONDITIONS}")
    conditions: list[Condition] = []
    for i, c in enumerate(rule.all_of):
        prefix = f"rule.all_of[{i}]"
        which = c.WhichOneof("condition")
        if which is None:
            v.add(prefix, "must set one condition")
        elif which == "rfm_group":
            if c.rfm_group in RfmGroup._value2member_map_:
                conditions.append(Condition(rfm_group=RfmGroup(c.rfm_group)))
            else:
                v.add(f"{prefix}.rfm_group", "must be a known group")
        elif which == "tier":
            if c.tier in Tier._value2member_map_:
                conditions.append(Condition(tier=Tier(c.tier)))
            else:
                v.add(f"{prefix}.tier", "must be a known tier")
        elif which == "category_purchase":
            cp = c.category_purchase
            parsed = validate_category_purchase(
                v,
                f"{prefix}.category_purchase",
                cp.bought_category_code,
                cp.within_days,
                cp.not_bought_category_code,
            )
            if parsed is not None:
                conditions.append(Condition(category_purchase=parsed))
        elif which == "owner_guide_staff_id":
            v.check(
                bool(ID_PATTERN.match(c.owner_guide_staff_id)),
                f"{prefix}.owner_guide_staff_id",
                "must be a staff id",
            )
            conditions.append(Condition(owner_guide_staff_id=c.owner_guide_staff_id))
        else:
            v.check(
                bool(ID_PATTERN.match(c.owner_store_id)),
                f"{prefix}.owner_store_id",
                "must be a store id",
            )
            conditions.append(Condition(owner_store_id=c.owner_store_id))
    v.raise_if_any()
    return SegmentRule(tuple(conditions))
