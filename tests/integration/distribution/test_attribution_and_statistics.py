"""Who is credited when a link is malformed, a dealer fulfils or the order is in another
currency; and what each statistics dimension counts as its commission."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc

from libs.testing.services import eventually
from services.distribution.domain.commission_rules import allocate
from services.distribution.domain.settlement import period_of
from tests.integration.distribution.support import (
    DEALER,
    EXPRESS,
    FIXED_FLOW4_SELLING_STORE,
    FULFILLING,
    GUIDE,
    ONLINE,
    OWNING,
    REFERRING,
    SAME_CITY,
    STORE,
    STORE_CH,
    STORE_SALE,
    amounts,
    build_ruled_world,
    by_rate,
    commissions_of,
    completed,
    order,
    returned,
    ts,
)


@pytest.fixture
async def world(api, events, test_stack, unique):
    return await build_ruled_world(api, test_stack, events[1], unique)


async def test_a_malformed_showroom_code_credits_nobody_and_the_order_is_still_paid(
    api, events, world, caplog
):
    caplog.set_level(logging.INFO)
    order_events, _ = events
    w = world
    genuine = (
        await api.as_(w.id("HQM")).call(
            "IssueGuideCode", svc.IssueGuideCodeRequest(staff_id=w.id("G2"))
        )
    ).guide_code
    # Non-ASCII signatures once made the consumer fail (and dead-letter the whole order).
    codes = {
        w.id("ONA1"): f"{w.id('G2')}.签名签名签名",
        w.id("ONA2"): genuine[:-1] + "é",
        w.id("ONA3"): "é",
    }
    for order_id, code in codes.items():
        o = order(
            order_id,
            channel=ONLINE,
            mode=EXPRESS,
            guide_code=code,
            province="Guangdong",
            city="Guangzhou",
            fulfilments=[("F1", w.id("LOC-S2"), ["L1", "L2"])],
        )
        await order_events.emit(order_id, completed(o))
    for order_id in codes:
        got = amounts(await commissions_of(api, w.id("HQM"), order_id))
        # No guide: nobody is owning guide or selling store; the fulfilling store is paid.
        assert {k: paid for k, (paid, _) in got.items()} == {
            (FULFILLING, STORE, w.id("S2")): by_rate(4, 3)
        }
    rejected = {
        getattr(r, "order_id", None)
        for r in caplog.records
        if r.getMessage() == "guide code rejected"
    }
    assert set(codes) <= rejected


async def test_a_distributor_fulfilling_a_line_is_paid_as_a_dealer(api, events, world):
    order_events, _ = events
    w = world
    o = order(
        w.id("ODF"),
        channel=ONLINE,
        mode=EXPRESS,
        member_id=w.id("M"),
        province="Guangdong",
        city="Foshan",
        fulfilments=[("F1", w.id("LOC-D"), ["L1"]), ("F2", w.id("LOC-S2"), ["L2"])],
    )
    await order_events.emit(o.order_id, completed(o))
    got = {
        k: paid
        for k, (paid, _) in amounts(await commissions_of(api, w.id("HQM"), o.order_id)).items()
    }
    # The fulfilling store's 1.43% is spread over L1 (the distributor's) and L2 (S2's).
    l1, l2 = allocate(by_rate(4, 3), [20_000, 9_999])
    assert got[(FULFILLING, DEALER, w.id("D"))] == l1
    assert got[(FULFILLING, STORE, w.id("S2"))] == l2
    assert (FULFILLING, STORE, w.id("D")) not in got
    period = period_of(datetime.now(UTC))
    hq = api.as_(w.id("HQM"))
    as_dealer = await hq.call(
        "GetStatement",
        svc.GetStatementRequest(beneficiary_kind=DEALER, beneficiary_id=w.id("D"), period=period),
    )
    assert as_dealer.statement.commission_total.amount_minor == got[(FULFILLING, DEALER, w.id("D"))]
    assert [e.role for e in as_dealer.entries] == [FULFILLING]
    as_store = await hq.call(
        "GetStatement",
        svc.GetStatementRequest(beneficiary_kind=STORE, beneficiary_id=w.id("D"), period=period),
    )
    assert as_store.statement.entry_count == 0


def in_usd(o):
    for line in o.lines:
        line.unit_price.currency_code = "USD"
        line.line_total.currency_code = "USD"
    o.total.currency_code = "USD"
    return o


async def test_rule_amounts_in_another_currency_are_not_paid(api, events, world):
    """The world's fixed selling-store amount (flow 4) and saved shipping cost are CNY: a USD
    order earns the rates only."""
    order_events, _ = events
    w = world
    code = (
        await api.as_(w.id("HQM")).call(
            "IssueGuideCode", svc.IssueGuideCodeRequest(staff_id=w.id("GF"))
        )
    ).guide_code
    usd = in_usd(
        order(
            w.id("OUSD"),
            channel=ONLINE,
            mode=SAME_CITY,
            guide_code=code,
            province="Guangdong",
            city="Shenzhen",
            fulfilments=[("F1", w.id("LOC-FR"), ["L1", "L2"])],
        )
    )
    await order_events.emit(usd.order_id, completed(usd))
    got = amounts(await commissions_of(api, w.id("SZM"), usd.order_id))
    fr, gf = w.id("FR"), w.id("GF")
    assert {k: paid for k, (paid, _) in got.items()} == {
        (OWNING, GUIDE, gf): by_rate(4, 1),
        (FULFILLING, DEALER, fr): by_rate(4, 3),
        (REFERRING, DEALER, fr): by_rate(4, 4),
    }
    statement = await api.as_(w.id("SZM")).call(
        "GetStatement",
        svc.GetStatementRequest(
            beneficiary_kind=DEALER,
            beneficiary_id=fr,
            period=period_of(datetime.now(UTC)),
            currency_code="USD",
        ),
    )
    assert statement.statement.rebate_total.amount_minor == by_rate(4, 4)
    assert {e.amount.currency_code for e in statement.entries} == {"USD"}


async def test_each_dimension_counts_its_own_share_of_the_commission(api, events, world):
    order_events, _ = events
    w = world
    g1, s1, s2 = w.id("G1"), w.id("S1"), w.id("S2")
    own_sale = order(
        w.id("OS1"),
        channel=STORE_CH,
        mode=STORE_SALE,
        member_id=w.id("M"),
        selling_store=w.id("LOC-S1"),
        fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
    )
    other_sale = order(
        w.id("OS2"),
        channel=STORE_CH,
        mode=STORE_SALE,
        member_id=w.id("M"),
        selling_store=w.id("LOC-S2"),
        fulfilments=[("F1", w.id("LOC-S2"), ["L1", "L2"])],
    )
    online = order(
        w.id("OS4"),
        channel=ONLINE,
        mode=EXPRESS,
        member_id=w.id("M"),
        province="Hunan",
        city="Changsha",
        fulfilments=[("F1", "WAREHOUSE-1", ["L1", "L2"])],
    )
    for o in (own_sale, other_sale, online):
        await order_events.emit(o.order_id, completed(o))
        await commissions_of(api, w.id("HQM"), o.order_id)
    # The own-store sale comes back whole: every row counts commission net of claw-backs.
    await order_events.emit(own_sale.order_id, returned(own_sale.order_id, w.id("RS1"), []))

    async def clawed_back() -> None:
        got = amounts(await commissions_of(api, w.id("HQM"), own_sale.order_id))
        assert all(paid == clawed for paid, clawed in got.values())

    await eventually(clawed_back, timeout=30)
    whole = {
        "own": 0,  # all of it came back
        "other": by_rate(2, 1) + by_rate(2, 2) + by_rate(2, 3),
        "online": by_rate(4, 1) + FIXED_FLOW4_SELLING_STORE,
    }
    now = datetime.now(UTC)

    async def rows(dimension: int) -> dict[str, tuple[int, int]]:
        stats = await api.as_(w.id("HQM")).call(
            "GetSalesStatistics",
            svc.GetSalesStatisticsRequest(
                dimension=dimension,  # type: ignore[arg-type]
                start_time=ts(now - timedelta(days=1)),
                end_time=ts(now + timedelta(days=1)),
            ),
        )
        return {r.key: (r.order_count, r.commission.amount_minor) for r in stats.rows}

    # G1 owns the member: credited on all three, with the guide's own commission only.
    assert await rows(pb.STATISTICS_DIMENSION_GUIDE) == {g1: (3, by_rate(2, 1) + by_rate(4, 1))}
    # Store rows: what the store itself earned (selling and fulfilling) on its orders.
    assert await rows(pb.STATISTICS_DIMENSION_STORE) == {
        s1: (2, FIXED_FLOW4_SELLING_STORE),
        s2: (1, by_rate(2, 2) + by_rate(2, 3)),
    }
    # Places, channels and flows: the whole commission of their orders.
    assert await rows(pb.STATISTICS_DIMENSION_CITY) == {
        "Shenzhen": (2, whole["own"] + whole["online"]),
        "Guangzhou": (1, whole["other"]),
    }
    assert await rows(pb.STATISTICS_DIMENSION_PROVINCE) == {"Guangdong": (3, sum(whole.values()))}
    assert await rows(pb.STATISTICS_DIMENSION_CHANNEL) == {
        "STORE": (2, whole["own"] + whole["other"]),
        "OWN_ONLINE": (1, whole["online"]),
    }
