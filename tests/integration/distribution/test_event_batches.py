"""Order events arriving together are applied together, and exactly as one by one: every
completed order paid once (a second event about an order pays nothing), a return in the
same batch as its order taken back once, and the settlement ledger (entries, the statement
totals kept from them) agreeing with what the commission lines say is still paid."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from libs.testing.services import eventually
from tests.integration.distribution.support import (
    amounts,
    build_ruled_world,
    by_rate,
    commissions_of,
    completed,
    order,
    returned,
)


@pytest.fixture
async def world(api, events, test_stack, unique):
    return await build_ruled_world(api, test_stack, events[1], unique)


async def test_a_batch_pays_each_order_once_and_its_ledger_agrees_with_its_lines(
    api, events, world, distribution
):
    order_events, _ = events
    w = world
    sales = [
        order(
            w.id(f"OB{i}"),
            channel=3,
            mode=1,
            member_id=w.id("M"),
            selling_store=w.id("LOC-S1"),
            fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
        )
        for i in range(12)
    ]
    back = sales[1].order_id
    # One transaction, keyed by the store so they stay in this order on one partition.
    async with order_events.uow() as uow:
        for sale in sales:
            uow.emit(completed(sale), aggregate_id=w.id("S1"))
        uow.emit(completed(sales[0]), aggregate_id=w.id("S1"))  # about O0 again
        for _ in range(2):  # the same return twice
            uow.emit(returned(back, f"RB-{w.u}", [("L1", 2)]), aggregate_id=w.id("S1"))
        await uow.commit()

    async def clawed() -> None:
        paid = amounts(await commissions_of(api, w.id("HQM"), back))
        assert all(clawed_back > 0 for _paid, clawed_back in paid.values())

    await commissions_of(api, w.id("HQM"), sales[-1].order_id)
    await eventually(clawed, timeout=30)
    first = amounts(await commissions_of(api, w.id("HQM"), sales[0].order_id))
    assert {role: paid for (role, _k, _b), (paid, _c) in first.items()} == {
        1: by_rate(1, 1),
        2: by_rate(1, 2),
        3: by_rate(1, 3),
    }
    async with distribution.runtime.db.session() as session:
        facts = (
            await session.execute(
                sa.text("SELECT count(*) FROM order_facts WHERE hq_id = :hq"), {"hq": w.hq}
            )
        ).scalar_one()
        applied = (
            await session.execute(
                sa.text("SELECT count(*) FROM applied_returns WHERE order_id = :o"), {"o": back}
            )
        ).scalar_one()
        ledger = (
            await session.execute(
                sa.text(
                    "SELECT beneficiary_kind, beneficiary_id, sum(amount_minor) FROM entries"
                    " WHERE hq_id = :hq GROUP BY 1, 2 ORDER BY 1, 2"
                ),
                {"hq": w.hq},
            )
        ).all()
        lines = (
            await session.execute(
                sa.text(
                    "SELECT l.beneficiary_kind, l.beneficiary_id,"
                    " sum(l.paid_minor - l.clawed_minor) FROM commission_lines l"
                    " JOIN order_facts f USING (order_id) WHERE f.hq_id = :hq"
                    " GROUP BY 1, 2 ORDER BY 1, 2"
                ),
                {"hq": w.hq},
            )
        ).all()
        totals = (
            await session.execute(
                sa.text(
                    "SELECT t.beneficiary_kind, t.beneficiary_id,"
                    " sum(t.commission_minor + t.rebate_minor + t.clawback_minor)"
                    " FROM statement_totals t WHERE (t.beneficiary_kind, t.beneficiary_id) IN"
                    " (SELECT beneficiary_kind, beneficiary_id FROM entries WHERE hq_id = :hq)"
                    " GROUP BY 1, 2 ORDER BY 1, 2"
                ),
                {"hq": w.hq},
            )
        ).all()
    assert facts == 12 and applied == 1
    assert [tuple(r) for r in ledger] == [tuple(r) for r in lines] == [tuple(r) for r in totals]
    # Paid on twelve orders, less what the one return took back (once).
    taken = amounts(await commissions_of(api, w.id("HQM"), back))
    paid = 12 * sum(by_rate(1, role) for role in (1, 2, 3))
    assert sum(r[2] for r in ledger) == paid - sum(c for _p, c in taken.values())
