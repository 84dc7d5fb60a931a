"""Segment evaluation: the members a rule (domain/segments.py) selects, keyset-paginated by
member id; exports only those who consented to the contact channel."""

from __future__ import annotations

import time
from datetime import datetime

from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.segment_queries import SegmentQueries
from services.member.domain.members import ContactChannel
from services.member.domain.segments import SegmentRule


async def evaluate(
    uow: UnitOfWork,
    rule: SegmentRule,
    now: datetime,
    limit: int,
    after: str | None,
    *,
    with_total: bool,
) -> tuple[list[str], int]:
    started = time.perf_counter()
    queries = SegmentQueries(uow.session)
    ids = await queries.member_ids(rule, now, limit + 1, after)
    total = await queries.count(rule, now) if with_total else 0
    metrics.SEGMENT_EVALUATION.observe(time.perf_counter() - started)
    return ids, total


async def export_contacts(
    uow: UnitOfWork,
    rule: SegmentRule,
    channel: ContactChannel,
    now: datetime,
    limit: int,
    after: str | None,
) -> list[tuple[str, str, str]]:
    """(member id, phone, name) of the segment's members who consented to ``channel``;
    only they are exported."""
    return await SegmentQueries(uow.session).contacts(rule, channel, now, limit + 1, after)
