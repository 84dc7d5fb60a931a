"""Distribution benchmark: commission events through the real consumer, and a store's
statement with 100,000 entries — against distribution running as its own OS process.

Size: OMNI_BENCH_DISTRIBUTION_ORDERS (default 1,000) OrderCompletedEvents (flow 1, three
roles, two lines each) written through order's outbox, relayed to the broker and applied by
distribution's consumer; then one OrderReturnReceivedEvent per order. Throughput is events
applied per second from the first write to the last effect (outbox, relay, broker, consumer
and commit included). Then OMNI_BENCH_DISTRIBUTION_ENTRIES (default 100,000) ledger entries
bulk-loaded with SQL for one store and period, and OMNI_BENCH_DISTRIBUTION_CALLS (default
200) sequential GetStatement calls (totals + first page of 100 entries).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

import grpc
import sqlalchemy as sa
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc

from libs.db import Database
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess, eventually
from services.distribution.domain.settlement import period_of
from tests.bench.report import Report, latency_summary
from tests.integration.distribution.support import (
    Api,
    Producer,
    build_world,
    completed,
    order,
    registered,
    returned,
    set_rules,
    wait_member_projected,
)

SECTION = "distribution"
BATCH = 500


async def _count(db: Database, sql: str, **params: object) -> int:
    async with db.session() as session:
        return int((await session.execute(sa.text(sql), params)).scalar_one())


async def _drain(db: Database, sql: str, target: int, **params: object) -> None:
    async def done() -> None:
        assert await _count(db, sql, **params) >= target

    await eventually(done, timeout=900, interval=0.2)


async def run(stack: TestStack, report: Report) -> None:
    orders = int(os.environ.get("OMNI_BENCH_DISTRIBUTION_ORDERS", "1000"))
    entry_count = int(os.environ.get("OMNI_BENCH_DISTRIBUTION_ENTRIES", "100000"))
    calls = int(os.environ.get("OMNI_BENCH_DISTRIBUTION_CALLS", "200"))
    u = uuid.uuid4().hex[:8].upper()
    server = ServiceSubprocess(
        "distribution", stack.env(), REPO / ".omni" / "bench-distribution.log"
    )
    db = Database(stack.settings("distribution").database_url(), pool_size=2, max_overflow=0)
    try:
        await server.wait_serving()
        async with (
            grpc.aio.insecure_channel(server.address) as channel,
            Producer(stack, "order") as order_events,
            Producer(stack, "member") as member_events,
        ):
            api = Api(channel, "platform-admin")
            w = await build_world(api, u)
            await set_rules(api, w)
            member = w.id("M")
            await member_events.emit(member, registered(member, w.id("G1"), w.id("S1")))
            await wait_member_projected(stack, member)

            built = [
                order(
                    w.id(f"B{n}"),
                    channel=3,
                    mode=1,
                    member_id=member,
                    selling_store=w.id("S1"),
                    fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
                )
                for n in range(orders)
            ]
            started = time.perf_counter()
            for start in range(0, orders, BATCH):
                async with order_events.uow() as uow:
                    for o in built[start : start + BATCH]:
                        uow.emit(completed(o), aggregate_id=o.order_id)
                    await uow.commit()
            await _drain(db, "SELECT count(*) FROM order_facts WHERE hq_id = :hq", orders, hq=w.hq)
            elapsed = time.perf_counter() - started
            report.add(
                SECTION,
                f"commission events processed per second (OrderCompleted, 3 roles, {orders} "
                "events, outbox → broker → consumer)",
                f"{orders / elapsed:.0f}/s ({elapsed:.1f} s)",
            )
            started = time.perf_counter()
            for start in range(0, orders, BATCH):
                async with order_events.uow() as uow:
                    for o in built[start : start + BATCH]:
                        uow.emit(
                            returned(o.order_id, f"R-{o.order_id}", [("L1", 1)]),
                            aggregate_id=o.order_id,
                        )
                    await uow.commit()
            await _drain(
                db,
                "SELECT count(*) FROM applied_returns WHERE order_id LIKE :pattern",
                orders,
                pattern=f"B%-{u}",
            )
            elapsed = time.perf_counter() - started
            report.add(
                SECTION,
                f"claw-back events processed per second (OrderReturnReceived, {orders} events)",
                f"{orders / elapsed:.0f}/s ({elapsed:.1f} s)",
            )

            period = period_of(datetime.now(UTC))
            store = w.id("S2")
            loaded = time.perf_counter()
            async with db.session() as session:
                await session.execute(
                    sa.text(
                        "INSERT INTO entries (hq_id, beneficiary_kind, beneficiary_id, period,"
                        " kind, role, flow, order_id, amount_minor, currency, occurred_at)"
                        " SELECT :hq, 2, :store, :period, CASE WHEN g % 10 = 0 THEN 3 ELSE 1 END,"
                        " 2, 2, 'BULK-' || g, CASE WHEN g % 10 = 0 THEN -(g % 500) ELSE g % 997"
                        " END, 'CNY', now() FROM generate_series(1, :n) AS g"
                    ),
                    {"hq": w.hq, "store": store, "period": period, "n": entry_count},
                )
                await session.execute(sa.text("ANALYZE entries"))
                await session.commit()
            report.add(
                SECTION,
                f"bulk load of {entry_count} statement entries (SQL)",
                f"{time.perf_counter() - loaded:.1f} s",
            )
            request = svc.GetStatementRequest(
                beneficiary_kind=pb.BENEFICIARY_KIND_STORE,
                beneficiary_id=store,
                period=period,
                page_size=100,
            )
            city = api.as_(w.id("GZM"))
            first = await city.call("GetStatement", request)
            expected = await _count(
                db,
                "SELECT coalesce(sum(amount_minor), 0) FROM entries WHERE beneficiary_kind = 2"
                " AND beneficiary_id = :store AND period = :period",
                store=store,
                period=period,
            )
            assert first.statement.net_total.amount_minor == expected  # type: ignore[attr-defined]
            assert first.statement.entry_count >= entry_count  # type: ignore[attr-defined]
            samples: list[float] = []
            for _ in range(calls):
                began = time.perf_counter()
                await city.call("GetStatement", request)
                samples.append(time.perf_counter() - began)
            report.add(
                SECTION,
                f"GetStatement, store with {entry_count} entries (totals + page of 100)",
                latency_summary(samples),
            )
            # The same call on an empty statement: what scope checks and round trips cost.
            empty = svc.GetStatementRequest(
                beneficiary_kind=pb.BENEFICIARY_KIND_STORE,
                beneficiary_id=store,
                period="2020-01",
                page_size=100,
            )
            samples = []
            for _ in range(calls):
                began = time.perf_counter()
                await city.call("GetStatement", empty)
                samples.append(time.perf_counter() - began)
            report.add(
                SECTION, "GetStatement, empty statement (baseline)", latency_summary(samples)
            )
    finally:
        await db.dispose()
        server.terminate()
        server.wait()
