"""A segment rule (domain/segments.py) as one SQL query over members and their purchase
categories, keyset-paginated by member id."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.member.adapters.tables import members, purchase_categories
from services.member.domain import segments as rules
from services.member.domain.members import ContactChannel, MemberState
from services.member.domain.segments import Condition, RfmGroup, SegmentRule


def _rfm_clause(group: RfmGroup, now: datetime) -> sa.ColumnElement[bool]:
    last = members.c.last_purchase_at
    bought = sa.and_(members.c.order_count > 0, last.is_not(None))
    lost_before = now - timedelta(days=rules.LOST_AFTER_DAYS)
    at_risk_before = now - timedelta(days=rules.AT_RISK_AFTER_DAYS)
    champion_since = now - timedelta(days=rules.CHAMPION_WITHIN_DAYS)
    champion = sa.and_(
        last >= champion_since,
        members.c.order_count >= rules.CHAMPION_MIN_ORDERS,
        members.c.lifetime_spend_minor >= rules.CHAMPION_MIN_SPEND_MINOR,
    )
    recent = sa.and_(bought, last >= at_risk_before)
    if group == RfmGroup.NO_PURCHASE:
        return sa.not_(bought)
    if group == RfmGroup.LOST:
        return sa.and_(bought, last < lost_before)
    if group == RfmGroup.AT_RISK:
        return sa.and_(bought, last >= lost_before, last < at_risk_before)
    if group == RfmGroup.CHAMPIONS:
        return sa.and_(recent, champion)
    if group == RfmGroup.LOYAL:
        return sa.and_(recent, sa.not_(champion), members.c.order_count >= rules.LOYAL_MIN_ORDERS)
    return sa.and_(recent, sa.not_(champion), members.c.order_count < rules.LOYAL_MIN_ORDERS)


def _bought(category: str, since: datetime) -> sa.Exists:
    # purchase_categories holds completed orders only, indexed by (category, time).
    return sa.exists().where(
        purchase_categories.c.member_id == members.c.member_id,
        purchase_categories.c.category == category,
        purchase_categories.c.occurred_at >= since,
    )


def _clause(c: Condition, now: datetime) -> sa.ColumnElement[bool]:
    if c.rfm_group is not None:
        return _rfm_clause(c.rfm_group, now)
    if c.tier is not None:
        return members.c.tier == int(c.tier)
    if c.owner_guide_staff_id is not None:
        return members.c.owner_guide_staff_id == c.owner_guide_staff_id
    if c.owner_store_id is not None:
        return members.c.owner_store_id == c.owner_store_id
    assert c.category_purchase is not None
    cp = c.category_purchase
    since = now - timedelta(days=cp.within_days)
    clause: sa.ColumnElement[bool] = _bought(cp.bought, since)
    if cp.not_bought:
        clause = sa.and_(clause, sa.not_(_bought(cp.not_bought, since)))
    return clause


def where(rule: SegmentRule, now: datetime) -> sa.ColumnElement[bool]:
    """Active members meeting every condition (merged records never match)."""
    return sa.and_(
        members.c.state == int(MemberState.ACTIVE), *(_clause(c, now) for c in rule.all_of)
    )


class SegmentQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def member_ids(
        self, rule: SegmentRule, now: datetime, limit: int, after: str | None
    ) -> list[str]:
        query = sa.select(members.c.member_id).where(where(rule, now))
        if after is not None:
            query = query.where(members.c.member_id > after)
        rows = await self.session.execute(query.order_by(members.c.member_id).limit(limit))
        return [r.member_id for r in rows]

    async def count(self, rule: SegmentRule, now: datetime) -> int:
        return int(
            (
                await self.session.execute(
                    sa.select(sa.func.count()).select_from(members).where(where(rule, now))
                )
            ).scalar_one()
        )

    async def contacts(
        self,
        rule: SegmentRule,
        channel: ContactChannel,
        now: datetime,
        limit: int,
        after: str | None,
    ) -> list[tuple[str, str, str]]:
        """(member id, phone, name) of the members who consented to ``channel``."""
        query = sa.select(members.c.member_id, members.c.phone, members.c.name).where(
            where(rule, now), sa.literal(int(channel)) == sa.any_(members.c.consents)
        )
        if after is not None:
            query = query.where(members.c.member_id > after)
        rows = await self.session.execute(query.order_by(members.c.member_id).limit(limit))
        return [(str(r.member_id), str(r.phone), str(r.name)) for r in rows]
