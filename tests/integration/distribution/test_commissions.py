"""The five flows driven by order events as the order service emits them; returns, duplicate
deliveries, franchisee rebates, closed statements and statistics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc
from omni.distribution.v1 import events_pb2 as dist_events
from omni.member.v1 import events_pb2 as member_events_pb

from libs.messaging import decode_envelope
from libs.testing.services import eventually
from services.distribution.domain.settlement import period_of
from tests.integration.distribution.support import (
    DEALER,
    EXPRESS,
    FIXED_FLOW4_SELLING_STORE,
    FULFILLING,
    GUIDE,
    GUIDE_DELIVERY,
    ONLINE,
    ORDER_TOTAL,
    OWNING,
    PICKUP,
    SAME_CITY,
    SAVED_SHIPPING,
    SELLING,
    SHIPPING_SHARE_BP,
    STORE,
    STORE_CH,
    STORE_SALE,
    amounts,
    build_ruled_world,
    by_rate,
    commissions_of,
    completed,
    half_up,
    order,
    rate_of,
    returned,
)

PUBLISHED = {
    m.DESCRIPTOR.full_name: m
    for m in (dist_events.CommissionAccruedEvent, dist_events.CommissionClawedBackEvent)
}


@pytest.fixture
async def world(api, events, test_stack, unique):
    return await build_ruled_world(api, test_stack, events[1], unique)


async def test_each_flow_pays_every_role_its_rule(api, events, world):
    order_events, _ = events
    w = world
    code = (
        await api.as_(w.id("GZM")).call(
            "IssueGuideCode", svc.IssueGuideCodeRequest(staff_id=w.id("G2"))
        )
    ).guide_code
    member = w.id("M")
    orders = {
        1: order(
            w.id("O1"),
            channel=STORE_CH,
            mode=STORE_SALE,
            member_id=member,
            selling_store=w.id("LOC-S1"),
            fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
        ),
        2: order(
            w.id("O2"),
            channel=STORE_CH,
            mode=STORE_SALE,
            member_id=member,
            selling_store=w.id("LOC-S2"),
            fulfilments=[("F1", w.id("LOC-S2"), ["L1", "L2"])],
        ),
        3: order(
            w.id("O3"),
            channel=ONLINE,
            mode=GUIDE_DELIVERY,
            member_id=member,
            guide_code=code,
            province="Guangdong",
            city="Guangzhou",
            fulfilments=[("F1", w.id("LOC-S2"), ["L1", "L2"])],
        ),
        4: order(
            w.id("O4"),
            channel=ONLINE,
            mode=EXPRESS,
            member_id=member,
            province="Hunan",
            city="Changsha",
            fulfilments=[("F1", "WAREHOUSE-1", ["L1", "L2"])],
        ),
        5: order(
            w.id("O5"),
            channel=ONLINE,
            mode=PICKUP,
            member_id=member,
            pickup_store=w.id("LOC-S2"),
            fulfilments=[("F1", w.id("LOC-S2"), ["L1", "L2"])],
        ),
    }
    for o in orders.values():
        await order_events.emit(o.order_id, completed(o))
    g1, g2, s1, s2 = w.id("G1"), w.id("G2"), w.id("S1"), w.id("S2")
    expected = {
        1: {
            (OWNING, GUIDE, g1): by_rate(1, 1),
            (SELLING, STORE, s1): by_rate(1, 2),
            (FULFILLING, STORE, s1): by_rate(1, 3),
        },
        2: {
            (OWNING, GUIDE, g1): by_rate(2, 1),
            (SELLING, STORE, s2): by_rate(2, 2),
            (FULFILLING, STORE, s2): by_rate(2, 3),
        },
        # The showroom link's guide wins over the owning guide.
        3: {
            (OWNING, GUIDE, g2): by_rate(3, 1),
            (SELLING, STORE, s2): by_rate(3, 2),
            (FULFILLING, STORE, s2): by_rate(3, 3),
        },
        # Shipped from a warehouse: no fulfilling store; the selling store's rule is fixed.
        4: {
            (OWNING, GUIDE, g1): by_rate(4, 1),
            (SELLING, STORE, s1): FIXED_FLOW4_SELLING_STORE,
        },
        5: {
            (OWNING, GUIDE, g1): by_rate(5, 1),
            (SELLING, STORE, s1): by_rate(5, 2),
            (FULFILLING, STORE, s2): by_rate(5, 3),
        },
    }
    for flow, o in orders.items():
        got = await commissions_of(api, w.id("HQM"), o.order_id)
        assert got.flow == flow
        assert {k: paid for k, (paid, _) in amounts(got).items()} == expected[flow]

    # Statistics by flow over the HQ's tree: one order each.
    now = datetime.now(UTC)
    stats = await api.as_(w.id("HQM")).call(
        "GetSalesStatistics",
        svc.GetSalesStatisticsRequest(
            dimension=pb.STATISTICS_DIMENSION_FLOW,
            start_time=_ts(now - timedelta(days=1)),
            end_time=_ts(now + timedelta(days=1)),
        ),
    )
    rows = {r.key: r for r in stats.rows}
    assert set(rows) == {"OWN_STORE", "OTHER_STORE", "GUIDE_DELIVERY", "EXPRESS", "STORE_PICKUP"}
    assert all(r.order_count == 1 and r.sales.amount_minor == ORDER_TOTAL for r in rows.values())
    assert rows["EXPRESS"].commission.amount_minor == sum(expected[4].values())
    # A city manager's statistics cover their city only.
    gz = await api.as_(w.id("GZM")).call(
        "GetSalesStatistics",
        svc.GetSalesStatisticsRequest(
            dimension=pb.STATISTICS_DIMENSION_STORE,
            start_time=_ts(now - timedelta(days=1)),
            end_time=_ts(now + timedelta(days=1)),
        ),
    )
    assert [(r.key, r.order_count) for r in gz.rows] == [(s2, 2)]


def _ts(moment: datetime):
    from tests.integration.distribution.support import ts

    return ts(moment)


async def test_duplicate_completion_pays_once_and_a_return_takes_back_its_share(api, events, world):
    order_events, _ = events
    w = world
    o = order(
        w.id("OD"),
        channel=STORE_CH,
        mode=STORE_SALE,
        member_id=w.id("M"),
        selling_store=w.id("LOC-S1"),
        fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
    )
    # The order service delivering the completion twice (two events, two event ids).
    await order_events.emit(o.order_id, completed(o), completed(o))
    # One of the two units of L1 comes back; same key, so applied after both completions.
    await order_events.emit(o.order_id, returned(o.order_id, w.id("R1"), [("L1", 1)]))
    await order_events.emit(o.order_id, returned(o.order_id, w.id("R1"), [("L1", 1)]))
    g1 = w.id("G1")

    async def clawed() -> svc.GetOrderCommissionsResponse:
        got = await api.as_(w.id("HQM")).call(
            "GetOrderCommissions", svc.GetOrderCommissionsRequest(order_id=o.order_id)
        )
        assert amounts(got)[(OWNING, GUIDE, g1)][1] > 0
        return got

    got = amounts(await eventually(clawed, timeout=30))
    # Guide: 1.10% of 29_999 = 330 (329.989 half up); L1 carries 220 of it (largest
    # remainder over 20_000 : 9_999), half of L1 came back: 110.
    assert got[(OWNING, GUIDE, g1)] == (330, 110)
    # Store roles: 1.20% -> 360 (L1 240), 1.30% -> 390 (L1 260); half of L1 comes back.
    assert got[(SELLING, STORE, w.id("S1"))] == (360, 120)
    assert got[(FULFILLING, STORE, w.id("S1"))] == (390, 130)

    period = period_of(datetime.now(UTC))
    statement = await api.as_(w.id("SZM")).call(
        "GetStatement",
        svc.GetStatementRequest(
            beneficiary_kind=GUIDE, beneficiary_id=g1, period=period, page_size=1
        ),
    )
    s = statement.statement
    assert (s.commission_total.amount_minor, s.clawback_total.amount_minor) == (330, -110)
    assert s.net_total.amount_minor == 220
    assert s.entry_count == 2
    # The entries, page by page, sum to the totals.
    entries = list(statement.entries)
    token = statement.next_page_token
    while token:
        page = await api.as_(w.id("SZM")).call(
            "GetStatement",
            svc.GetStatementRequest(
                beneficiary_kind=GUIDE,
                beneficiary_id=g1,
                period=period,
                page_size=1,
                page_token=token,
            ),
        )
        entries += page.entries
        token = page.next_page_token
    assert [e.amount.amount_minor for e in entries] == [330, -110]

    # A full return afterwards takes back exactly what is left, never more.
    await order_events.emit(o.order_id, returned(o.order_id, w.id("R2"), []))

    async def all_back() -> dict:
        got = amounts(
            await api.as_(w.id("HQM")).call(
                "GetOrderCommissions", svc.GetOrderCommissionsRequest(order_id=o.order_id)
            )
        )
        assert all(paid == clawed for paid, clawed in got.values())
        return got

    await eventually(all_back, timeout=30)


async def test_franchisee_rebates_on_referred_same_city_order(api, events, world):
    order_events, _ = events
    w = world
    code = (
        await api.as_(w.id("HQM")).call(
            "IssueGuideCode", svc.IssueGuideCodeRequest(staff_id=w.id("GF"))
        )
    ).guide_code
    o = order(
        w.id("OF"),
        channel=ONLINE,
        mode=SAME_CITY,
        guide_code=code,
        province="Guangdong",
        city="Shenzhen",
        fulfilments=[("F1", w.id("LOC-FR"), ["L1", "L2"])],
    )
    forged = order(
        w.id("OX"),
        channel=ONLINE,
        mode=SAME_CITY,
        guide_code=w.id("GF") + ".forgedsignature0000000",
        province="Guangdong",
        city="Shenzhen",
        fulfilments=[("F1", w.id("LOC-FR"), ["L1", "L2"])],
    )
    await order_events.emit(o.order_id, completed(o))
    await order_events.emit(forged.order_id, completed(forged))
    fr, gf = w.id("FR"), w.id("GF")
    got = {
        k: paid
        for k, (paid, _) in amounts(await commissions_of(api, w.id("SZM"), o.order_id)).items()
    }
    assert got == {
        (OWNING, GUIDE, gf): by_rate(4, 1),
        (SELLING, DEALER, fr): FIXED_FLOW4_SELLING_STORE,
        (FULFILLING, DEALER, fr): by_rate(4, 3),
        (pb.COMMISSION_ROLE_REFERRING_FRANCHISEE, DEALER, fr): by_rate(4, 4),
        (pb.COMMISSION_ROLE_FULFILLING_FRANCHISEE, DEALER, fr): SAVED_SHIPPING
        * SHIPPING_SHARE_BP
        // 10_000,
    }
    # A forged link credits nobody's guide: only the fulfilling roles are paid.
    forged_got = amounts(await commissions_of(api, w.id("SZM"), forged.order_id))
    assert {role for role, _, _ in forged_got} == {
        FULFILLING,
        pb.COMMISSION_ROLE_FULFILLING_FRANCHISEE,
    }
    statement = await api.as_(w.id("SZM")).call(
        "GetStatement",
        svc.GetStatementRequest(
            beneficiary_kind=DEALER, beneficiary_id=fr, period=period_of(datetime.now(UTC))
        ),
    )
    s = statement.statement
    assert s.rebate_total.amount_minor == by_rate(4, 4) + 2 * 600
    assert s.net_total.amount_minor == sum(e.amount.amount_minor for e in statement.entries)


async def test_closed_statement_is_unchanged_by_a_later_return(api, events, world):
    order_events, _ = events
    w = world
    now = datetime.now(UTC)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(hour=12)
    closed_period = period_of(last_month)
    o = order(
        w.id("OC"),
        channel=STORE_CH,
        mode=STORE_SALE,
        member_id=w.id("M"),
        selling_store=w.id("LOC-S1"),
        fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
    )
    await order_events.emit(o.order_id, completed(o, at=last_month))
    await commissions_of(api, w.id("HQM"), o.order_id)
    hq = api.as_(w.id("HQM"))
    with pytest.raises(grpc.aio.AioRpcError) as not_yet:
        await hq.call(
            "ClosePeriod",
            svc.ClosePeriodRequest(
                request_id=f"close-now-{w.u}", hq_id=w.hq, period=period_of(now)
            ),
        )
    assert not_yet.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as city:
        await api.as_(w.id("SZM")).call(
            "ClosePeriod",
            svc.ClosePeriodRequest(request_id=f"close-sz-{w.u}", hq_id=w.hq, period=closed_period),
        )
    assert city.value.code() == grpc.StatusCode.PERMISSION_DENIED
    closed = await hq.call(
        "ClosePeriod",
        svc.ClosePeriodRequest(request_id=f"close-{w.u}", hq_id=w.hq, period=closed_period),
    )
    assert closed.statement_count == 2  # G1 and S1

    request = svc.GetStatementRequest(
        beneficiary_kind=GUIDE, beneficiary_id=w.id("G1"), period=closed_period
    )
    before = await hq.call("GetStatement", request)
    assert before.statement.status == pb.PERIOD_STATUS_CLOSED
    assert before.statement.net_total.amount_minor == by_rate(1, 1)

    await order_events.emit(o.order_id, returned(o.order_id, w.id("RC"), []))
    current = svc.GetStatementRequest(
        beneficiary_kind=GUIDE, beneficiary_id=w.id("G1"), period=period_of(now)
    )

    async def clawed_in_open_period() -> svc.GetStatementResponse:
        page = await hq.call("GetStatement", current)
        assert page.statement.clawback_total.amount_minor == -by_rate(1, 1)
        return page

    later = await eventually(clawed_in_open_period, timeout=30)
    assert later.statement.status == pb.PERIOD_STATUS_OPEN
    assert await hq.call("GetStatement", request) == before


async def test_owner_change_and_rule_versions_decide_who_gets_what(api, events, world):
    order_events, member_events = events
    w = world
    now = datetime.now(UTC)
    await api.as_(w.id("HQM")).call(
        "SetCommissionRule",
        svc.SetCommissionRuleRequest(
            request_id=f"rule-v2-{w.u}",
            hq_id=w.hq,
            flow=pb.COMMISSION_FLOW_OTHER_STORE,
            role=OWNING,
            rate_bp=1_000,
            effective_time=_ts(now - timedelta(hours=1)),
        ),
    )
    changed = member_events_pb.MemberOwnerChangedEvent(
        member_id=w.id("M"),
        previous_owner_guide_staff_id=w.id("G1"),
        owner_guide_staff_id=w.id("G2"),
        owner_store_id=w.id("S2"),
        reason="guide left",
        change_time=_ts(now),
    )
    await member_events.emit(w.id("M"), changed)

    def sale_in_s1(order_id: str):
        return order(
            order_id,
            channel=STORE_CH,
            mode=STORE_SALE,
            member_id=w.id("M"),
            selling_store=w.id("LOC-S1"),
            fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
        )

    # Owner is now G2 (store S2), so a sale in S1 is flow 2 for G2.
    async def credited_to_new_owner() -> dict:
        o = sale_in_s1(w.id(f"OV{uuid.uuid4().hex[:6]}"))
        await order_events.emit(o.order_id, completed(o))
        got = amounts(await commissions_of(api, w.id("HQM"), o.order_id))
        assert (OWNING, GUIDE, w.id("G2")) in got
        return got

    got = await eventually(credited_to_new_owner, timeout=30, interval=0.5)
    assert got[(OWNING, GUIDE, w.id("G2"))][0] == half_up(ORDER_TOTAL * 1_000, 10_000)
    # An order completed before version 2 took effect is paid under version 1.
    old = sale_in_s1(w.id("OV-OLD"))
    await order_events.emit(o_id := old.order_id, completed(old, at=now - timedelta(days=1)))
    got = amounts(await commissions_of(api, w.id("HQM"), o_id))
    assert got[(OWNING, GUIDE, w.id("G2"))][0] == by_rate(2, 1)
    rules = await api.as_(w.id("HQM")).call(
        "ListCommissionRules", svc.ListCommissionRulesRequest(hq_id=w.hq)
    )
    versions = [
        (r.version, r.rate_bp)
        for r in rules.rules
        if r.flow == pb.COMMISSION_FLOW_OTHER_STORE and r.role == OWNING
    ]
    assert versions == [(1, rate_of(2, 1)), (2, 1_000)]


async def test_commission_events_are_published_through_the_outbox(api, events, world, test_stack):
    order_events, _ = events
    w = world
    o = order(
        w.id("OE"),
        channel=STORE_CH,
        mode=STORE_SALE,
        member_id=w.id("M"),
        selling_store=w.id("LOC-S1"),
        fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
    )
    await order_events.emit(o.order_id, completed(o))
    await order_events.emit(o.order_id, returned(o.order_id, w.id("RE"), [("L2", 1)]))
    settings = test_stack.settings("distribution")
    consumer = AIOKafkaConsumer(
        settings.topic("distribution"),
        bootstrap_servers=settings.require_kafka(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: dict[str, Any] = {}
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(seen) < 2 and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = decode_envelope(record.value)
                    if record.key != o.order_id.encode() or envelope.event_type not in PUBLISHED:
                        continue
                    kind = PUBLISHED[envelope.event_type]
                    message = kind()
                    message.ParseFromString(envelope.payload)
                    seen[envelope.event_type] = message
    finally:
        await consumer.stop()
    accrued = seen["omni.distribution.v1.CommissionAccruedEvent"]
    assert accrued.flow == pb.COMMISSION_FLOW_OWN_STORE
    assert {(c.role, c.paid.amount_minor) for c in accrued.commissions} == {
        (OWNING, by_rate(1, 1)),
        (SELLING, by_rate(1, 2)),
        (FULFILLING, by_rate(1, 3)),
    }
    clawed = seen["omni.distribution.v1.CommissionClawedBackEvent"]
    assert clawed.return_id == w.id("RE")
    # L2 (9_999 of 29_999) came back whole: its share of each role.
    assert {c.role for c in clawed.clawbacks} == {OWNING, SELLING, FULFILLING}
    assert all(c.clawed_back.amount_minor > 0 for c in clawed.clawbacks)


async def test_ledger_is_append_only_and_totals_follow_every_insert(test_stack, unique):
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError

    from libs.db import Database

    db = Database(test_stack.settings("distribution").database_url(), pool_size=1)
    insert = sa.text(
        "INSERT INTO entries (hq_id, beneficiary_kind, beneficiary_id, period, kind, role,"
        " flow, order_id, amount_minor, currency, occurred_at)"
        " SELECT 'HQ', 2, :who, '2026-01', k, 2, 1, 'O', a, 'CNY', now()"
        " FROM (VALUES (1, 500), (2, 70), (3, -120), (1, 5)) AS v(k, a)"
    )
    try:
        async with db.session() as session:
            await session.execute(insert, {"who": f"S-{unique}"})
            await session.execute(insert, {"who": f"S-{unique}"})
            await session.commit()
            row = (
                await session.execute(
                    sa.text(
                        "SELECT commission_minor, rebate_minor, clawback_minor, entry_count"
                        " FROM statement_totals WHERE beneficiary_id = :who"
                    ),
                    {"who": f"S-{unique}"},
                )
            ).one()
            assert tuple(row) == (1010, 140, -240, 8)
        for statement in ("UPDATE entries SET amount_minor = 0", "DELETE FROM entries"):
            async with db.session() as session:
                with pytest.raises(DBAPIError, match="append-only"):
                    await session.execute(
                        sa.text(f"{statement} WHERE beneficiary_id = :who"),
                        {"who": f"S-{unique}"},
                    )
    finally:
        await db.dispose()
