"""Purchase history from order events, and what it drives: points earned on completed
orders and reversed on returns, spend and tier upgrades, RFM statistics.

Applied once per order / return: the consumer's inbox drops redelivered events, and the
unique indexes on (order_id) / (return_id) drop a second event about the same fact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.tables import (
    members,
    points_entries,
    purchase_categories,
    purchase_history,
)
from services.member.domain.points import (
    PLATFORM_CURRENCY,
    PointsChangeKind,
    Tier,
    points_for_order,
    points_to_reverse,
    tier_after_spend,
)
from services.member.service_layer.points import change_points
from services.member.service_layer.tiers import apply_tier

ORDER = 1
RETURN = 2
# ON CONFLICT must name the partial unique indexes' predicates literally (a bound parameter
# does not let PostgreSQL infer the arbiter index).


@dataclass(frozen=True)
class CompletedOrder:
    order_id: str
    member_id: str
    channel_id: str
    channel_kind: int
    store_id: str
    currency: str
    total_minor: int
    categories: tuple[str, ...]
    completed_at: datetime


@dataclass(frozen=True)
class ReceivedReturn:
    return_id: str
    order_id: str
    member_id: str
    store_id: str
    currency: str
    refund_minor: int
    received_at: datetime


async def record_completed_order(uow: UnitOfWork, order: CompletedOrder) -> None:
    """Earn points at the member's tier rate (the tier before this order), add the spend,
    then upgrade the tier if the spend reaches a higher one. Guest orders are ignored; an
    order of a merged member goes to the survivor."""
    if not order.member_id:
        return
    member = await MemberRepository(uow.session).require_active(order.member_id, for_update=True)
    inserted = (
        await uow.session.execute(
            insert(purchase_history)
            .values(
                member_id=member.member_id,
                kind=ORDER,
                order_id=order.order_id,
                return_id="",
                channel_id=order.channel_id,
                channel_kind=order.channel_kind,
                store_id=order.store_id,
                amount_minor=order.total_minor,
                currency_code=order.currency,
                categories=sorted(set(order.categories)),
                points_delta=0,
                occurred_at=order.completed_at,
            )
            .on_conflict_do_nothing(
                index_elements=["order_id"], index_where=sa.text(f"kind = {ORDER}")
            )
            .returning(purchase_history.c.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return
    if order.categories:
        await uow.session.execute(
            purchase_categories.insert(),
            [
                {
                    "history_id": inserted,
                    "category": category,
                    "member_id": member.member_id,
                    "occurred_at": order.completed_at,
                }
                for category in sorted(set(order.categories))
            ],
        )
    metrics.PURCHASES_RECORDED.labels("order").inc()
    counts = order.currency == PLATFORM_CURRENCY
    tier = Tier(member.tier)
    spend = member.lifetime_spend_minor + (order.total_minor if counts else 0)
    last = member.last_purchase_at
    await uow.session.execute(
        members.update()
        .where(members.c.member_id == member.member_id)
        .values(
            lifetime_spend_minor=spend,
            order_count=members.c.order_count + 1,
            last_purchase_at=order.completed_at if last is None else max(last, order.completed_at),
        )
    )
    earned = points_for_order(tier, order.total_minor) if counts else 0
    if earned:
        await change_points(
            uow, member.member_id, PointsChangeKind.EARN, earned, order_id=order.order_id
        )
        await uow.session.execute(
            purchase_history.update()
            .where(purchase_history.c.id == inserted)
            .values(points_delta=earned)
        )
    await apply_tier(uow, member.member_id, tier, tier_after_spend(tier, spend))


async def record_return(uow: UnitOfWork, received: ReceivedReturn) -> None:
    """Reverse the order's points in proportion to the refunded share (cumulative over all
    its returns) and lower the spend; the tier is not lowered."""
    if not received.member_id:
        return
    member = await MemberRepository(uow.session).require_active(received.member_id, for_update=True)
    order = (
        await uow.session.execute(
            sa.select(purchase_history).where(
                purchase_history.c.kind == ORDER, purchase_history.c.order_id == received.order_id
            )
        )
    ).first()
    refunded_before = 0
    if order is not None:
        refunded_before = -int(
            (
                await uow.session.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(purchase_history.c.amount_minor), 0)
                    ).where(
                        purchase_history.c.kind == RETURN,
                        purchase_history.c.order_id == received.order_id,
                    )
                )
            ).scalar_one()
        )
    inserted = (
        await uow.session.execute(
            insert(purchase_history)
            .values(
                member_id=member.member_id,
                kind=RETURN,
                order_id=received.order_id,
                return_id=received.return_id,
                channel_id=order.channel_id if order else "",
                channel_kind=order.channel_kind if order else 0,
                store_id=received.store_id,
                amount_minor=-received.refund_minor,
                currency_code=received.currency,
                categories=[],
                points_delta=0,
                occurred_at=received.received_at,
            )
            .on_conflict_do_nothing(
                index_elements=["return_id"], index_where=sa.text(f"kind = {RETURN}")
            )
            .returning(purchase_history.c.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return
    metrics.PURCHASES_RECORDED.labels("return").inc()
    counts = (
        order is not None
        and received.currency == PLATFORM_CURRENCY
        and order.currency_code == PLATFORM_CURRENCY
    )
    if not counts or order is None:
        return
    refund = min(received.refund_minor, max(0, order.amount_minor - refunded_before))
    await uow.session.execute(
        members.update()
        .where(members.c.member_id == member.member_id)
        .values(lifetime_spend_minor=sa.func.greatest(0, members.c.lifetime_spend_minor - refund))
    )
    earned, reversed_ = await _order_points(uow, received.order_id)
    reversal = points_to_reverse(
        earned, reversed_, order.amount_minor, refunded_before, received.refund_minor
    )
    if reversal:
        await change_points(
            uow,
            member.member_id,
            PointsChangeKind.REVERSE,
            -reversal,
            order_id=received.order_id,
            return_id=received.return_id,
        )
        await uow.session.execute(
            purchase_history.update()
            .where(purchase_history.c.id == inserted)
            .values(points_delta=-reversal)
        )


async def _order_points(uow: UnitOfWork, order_id: str) -> tuple[int, int]:
    rows = await uow.session.execute(
        sa.select(points_entries.c.kind, sa.func.sum(points_entries.c.delta))
        .where(
            points_entries.c.order_id == order_id,
            points_entries.c.kind.in_([int(PointsChangeKind.EARN), int(PointsChangeKind.REVERSE)]),
        )
        .group_by(points_entries.c.kind)
    )
    sums = {int(kind): int(total) for kind, total in rows.all()}
    return sums.get(int(PointsChangeKind.EARN), 0), -sums.get(int(PointsChangeKind.REVERSE), 0)


async def list_records(
    uow: UnitOfWork, member_id: str, limit: int, after: tuple[datetime, int] | None
) -> list[sa.Row[tuple[object, ...]]]:
    """Newest first, across all channels, orders and returns."""
    await MemberRepository(uow.session).require(member_id)
    query = (
        sa.select(purchase_history)
        .where(purchase_history.c.member_id == member_id)
        .order_by(purchase_history.c.occurred_at.desc(), purchase_history.c.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(
            sa.tuple_(purchase_history.c.occurred_at, purchase_history.c.id)
            < sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
        )
    return list((await uow.session.execute(query)).all())
