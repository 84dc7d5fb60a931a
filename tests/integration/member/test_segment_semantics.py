"""The SQL evaluation of segments agrees with the domain's reference semantics
(domain/segments.py `matches`) on generated members and histories."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb

from services.member.adapters.tables import members, purchase_categories, purchase_history
from services.member.domain.points import Tier
from services.member.domain.segments import (
    CategoryPurchase,
    Condition,
    Profile,
    Purchase,
    RfmGroup,
    RfmStats,
    SegmentRule,
    matches,
)
from tests.integration.member.conftest import fresh_phone

CATEGORIES = ("PHONE", "CASE", "C1")


def _proto_condition(c: Condition) -> m.SegmentCondition:
    if c.rfm_group is not None:
        return m.SegmentCondition(rfm_group=int(c.rfm_group))  # type: ignore[arg-type]
    if c.tier is not None:
        return m.SegmentCondition(tier=int(c.tier))  # type: ignore[arg-type]
    if c.owner_guide_staff_id is not None:
        return m.SegmentCondition(owner_guide_staff_id=c.owner_guide_staff_id)
    if c.owner_store_id is not None:
        return m.SegmentCondition(owner_store_id=c.owner_store_id)
    assert c.category_purchase is not None
    cp = c.category_purchase
    return m.SegmentCondition(
        category_purchase=m.CategoryPurchase(
            bought_category_code=cp.bought,
            within_days=cp.within_days,
            not_bought_category_code=cp.not_bought,
        )
    )


@pytest.mark.parametrize("seed", [1, 2])
async def test_sql_segments_agree_with_the_reference_semantics(stub, member_service, unique, seed):
    rng = random.Random(seed)
    store = f"ST{seed}-{unique}"
    now = datetime.now(UTC)
    profiles: dict[str, Profile] = {}
    member_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    for k in range(60):
        member_id = f"SQ{seed}{unique}{k:03d}"
        purchases = []
        for n in range(rng.choice([0, 1, 2, 3, 5, 6])):
            # Half a day off whole days, so seconds between here and the server never
            # cross a window's edge.
            when = now - timedelta(days=rng.randint(0, 500), hours=12)
            categories = frozenset(rng.sample(CATEGORIES, rng.randint(1, 2)))
            purchases.append(Purchase(when, categories))
            history_rows.append(
                {
                    "member_id": member_id,
                    "kind": 1,
                    "order_id": f"{member_id}-{n}",
                    "return_id": "",
                    "channel_id": "pos",
                    "channel_kind": 3,
                    "store_id": store,
                    "amount_minor": 2_000_00,
                    "currency_code": "CNY",
                    "categories": sorted(categories),
                    "points_delta": 0,
                    "occurred_at": when,
                }
            )
        stats = RfmStats(
            len(purchases),
            max((p.occurred_at for p in purchases), default=None),
            2_000_00 * len(purchases),
        )
        profile = Profile(
            tier=rng.choice(list(Tier)),
            owner_guide_staff_id=rng.choice(["G1", "G2"]),
            owner_store_id=store,
            stats=stats,
            purchases=tuple(purchases),
        )
        profiles[member_id] = profile
        member_rows.append(
            {
                "member_id": member_id,
                "phone": "+86" + fresh_phone(),
                "name": "",
                "source": 1,
                "distributor_id": "",
                "owner_guide_staff_id": profile.owner_guide_staff_id,
                "owner_store_id": store,
                "tier": int(profile.tier),
                "points_balance": 0,
                "stored_value_minor": 0,
                "lifetime_spend_minor": stats.spend_minor,
                "order_count": stats.order_count,
                "last_purchase_at": stats.last_purchase_at,
                "consents": [],
                "state": 1,
                "merged_into": None,
                "created_at": now,
            }
        )
    async with member_service.runtime.db.session() as session, session.begin():
        await session.execute(members.insert(), member_rows)
        for row in history_rows:
            # The categories projection the service writes beside each completed order.
            history_id = (
                await session.execute(
                    purchase_history.insert().values(**row).returning(purchase_history.c.id)
                )
            ).scalar_one()
            await session.execute(
                purchase_categories.insert(),
                [
                    {
                        "history_id": history_id,
                        "category": category,
                        "member_id": row["member_id"],
                        "occurred_at": row["occurred_at"],
                    }
                    for category in row["categories"]
                ],
            )

    in_store = Condition(owner_store_id=store)
    conditions = [
        *(Condition(rfm_group=g) for g in RfmGroup),
        *(Condition(tier=t) for t in Tier),
        Condition(owner_guide_staff_id="G1"),
        Condition(category_purchase=CategoryPurchase("PHONE", 30, "CASE")),
        Condition(category_purchase=CategoryPurchase("CASE", 200)),
        Condition(category_purchase=CategoryPurchase("C1", 400, "PHONE")),
    ]
    rules = [SegmentRule((in_store, c)) for c in conditions]
    rules += [
        SegmentRule((in_store, a, b)) for a, b in zip(conditions, conditions[3:], strict=False)
    ]
    non_empty = 0
    for rule in rules:
        expected = sorted(i for i, p in profiles.items() if matches(rule, p, now))
        non_empty += bool(expected)
        page = await stub.EvaluateSegment(
            pb.EvaluateSegmentRequest(
                rule=m.SegmentRule(all_of=[_proto_condition(c) for c in rule.all_of]),
                page_size=1000,
            )
        )
        assert list(page.member_ids) == expected, rule
        assert page.total_size == len(expected)
    assert non_empty >= len(rules) // 2  # the comparison is not vacuous
