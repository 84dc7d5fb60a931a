"""Outbox relay benchmark: a backlog of outbox rows published to the broker by one relay and
by two relays (each its own OS process, sharing the backlog by buckets), and what writing an
event to the outbox adds to the transaction of a state change.

Size: OMNI_BENCH_RELAY_ROWS (default 100,000) StockChangedEvents over 10,000 keys, in a
scratch database with the platform tables. Relay throughput is rows published (broker
acknowledged, rows marked) per second, from the relays' start signal to an empty backlog;
CPU-ms per event is the relays' processes and the PostgreSQL backends of the database.

Commit cost: OMNI_BENCH_RELAY_CLIENTS (default 8) concurrent clients, OMNI_BENCH_RELAY_ROUNDS
(default 3) rounds of OMNI_BENCH_RELAY_SECONDS (default 3) per variant, alternating: a
transaction that increments one of 1,000 counters (BEGIN, UPDATE, COMMIT on asyncpg,
libs/pg.py); the same with one event emitted (libs/pg.py writes the outbox row with a
statement of its own at commit); the same with the outbox row written by the UPDATE's own
statement (a CTE). CPU-ms per transaction is this process plus the database's backends; the
ratios are against the change alone.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from omni.inventory.v1 import events_pb2, inventory_pb2

from libs.db import Database, asyncpg_connect_kwargs, drop_database, ensure_database
from libs.messaging import ensure_topics
from libs.pg import Pg, write_outbox
from libs.platform_tables import metadata as platform_metadata
from libs.platform_tables import outbox_columns, outbox_insert_cte
from libs.testing.plugin import REPO, TestStack
from libs.unit_of_work import PendingEvent, outbox_row
from tests.bench.cpu import CpuMeter, backend_pids
from tests.bench.report import Report

SECTION = "outbox relay"
COUNTERS = 1000


def stock_changed(sku: str, available: int) -> events_pb2.StockChangedEvent:
    return events_pb2.StockChangedEvent(
        stock_level=inventory_pb2.StockLevel(
            location_id="WH-BENCH", sku_code=sku, on_hand=available + 3, available=available
        ),
        channels=["MALL", "POS"],
        cause="reserved",
    )


async def _fill(pg: Pg, topic: str, rows: int) -> None:
    chunk = 2000
    for start in range(0, rows, chunk):
        events = [
            PendingEvent(uuid.uuid4(), f"SKU-{n % 10_000:05d}", stock_changed(f"SKU-{n}", n % 50))
            for n in range(start, min(rows, start + chunk))
        ]
        async with pg.transaction() as tx:
            await write_outbox(tx.conn, "bench", topic, events)
            await tx.commit()


async def _relays(
    count: int, url: str, bootstrap: str, conn: asyncpg.Connection, database: str, rows: int
) -> tuple[float, float, float]:
    """(events/s, relay CPU-ms per event, PostgreSQL CPU-ms per event)."""
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured part
            [sys.executable, "-m", "tests.bench.relay_process", url, bootstrap],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"},
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line.strip() == "ready", line
        relays = CpuMeter(p.pid for p in procs)
        database_cpu = CpuMeter()
        relays.start()
        database_cpu.start(await backend_pids(conn, database))
        began = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - began
        database_cpu.stop(await backend_pids(conn, database))
        relays.stop()
        published = []
        for proc in procs:
            assert proc.stdout is not None
            published.append(int((await asyncio.to_thread(proc.stdout.readline)).strip() or 0))
        assert sum(published) >= rows, published
        return (
            rows / elapsed,
            relays.seconds * 1000 / rows,
            database_cpu.seconds * 1000 / rows,
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


async def _rate(
    pg: Pg,
    conn: asyncpg.Connection,
    database: str,
    clients: int,
    seconds: float,
    transaction: Callable[[int], Awaitable[None]],
) -> tuple[int, float]:
    """(transactions, CPU seconds of this process and the database's backends)."""
    done = 0
    stop = asyncio.Event()

    async def client() -> None:
        nonlocal done
        while not stop.is_set():
            await transaction(random.randrange(COUNTERS))
            done += 1

    meter = CpuMeter([os.getpid()])
    meter.start(await backend_pids(conn, database))
    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    meter.stop(await backend_pids(conn, database))
    return done, meter.seconds


async def run(stack: TestStack, report: Report) -> None:
    rows = int(os.environ.get("OMNI_BENCH_RELAY_ROWS", "100000"))
    clients = int(os.environ.get("OMNI_BENCH_RELAY_CLIENTS", "8"))
    seconds = float(os.environ.get("OMNI_BENCH_RELAY_SECONDS", "3"))
    rounds = int(os.environ.get("OMNI_BENCH_RELAY_ROUNDS", "3"))
    settings = stack.settings("order").with_overrides(
        database_prefix=f"omni_t{stack.run_id}_relay_", topic_prefix=f"t{stack.run_id}.relay."
    )
    url = settings.database_url()
    await ensure_database(url)
    db = Database(url, pool_size=2, max_overflow=0)
    async with db.engine.begin() as setup:
        await setup.run_sync(platform_metadata.create_all)
    await db.dispose()
    topic = settings.topic("order")
    await ensure_topics(stack.kafka_bootstrap, [topic])
    pg = Pg(url, producer="bench", topic=topic, max_size=clients)
    conn = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    database = str(url.database)
    try:
        await _fill(pg, topic, rows)
        await conn.execute("VACUUM ANALYZE outbox")
        text_url = url.render_as_string(hide_password=False)
        for count in (1, 2):
            if count > 1:
                await conn.execute("UPDATE outbox SET published_at = NULL")
                await conn.execute("VACUUM ANALYZE outbox")
            rate, relay_ms, pg_ms = await _relays(
                count, text_url, stack.kafka_bootstrap, conn, database, rows
            )
            report.add(
                SECTION,
                f"outbox → broker, {rows:,} rows over 10,000 keys, {count} relay"
                f"{'s' if count > 1 else ''} (own processes)",
                f"{rate:,.0f} events/s; CPU-ms per event: relay{'s' if count > 1 else ''} "
                f"{relay_ms:.3f}, PostgreSQL {pg_ms:.3f}",
            )

        await conn.execute(
            "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);"
            f"INSERT INTO counters SELECT g, 0 FROM generate_series(0, {COUNTERS - 1}) g"
        )
        event = stock_changed("SKU-COMMIT", 7)
        in_one = f"WITH {outbox_insert_cte(2)} UPDATE counters SET n = n + 1 WHERE id = $1"

        async def alone(counter: int) -> None:
            async with pg.transaction() as tx:
                await tx.conn.execute("UPDATE counters SET n = n + 1 WHERE id = $1", counter)
                await tx.commit()

        async def emitted(counter: int) -> None:
            async with pg.transaction() as tx:
                await tx.conn.execute("UPDATE counters SET n = n + 1 WHERE id = $1", counter)
                tx.emit(event, f"SKU-{counter}")
                await tx.commit()

        async def same_statement(counter: int) -> None:
            row = outbox_row("bench", topic, PendingEvent(uuid.uuid4(), f"SKU-{counter}", event))
            async with pg.transaction() as tx:
                await tx.conn.execute(in_one, counter, *outbox_columns([row]))
                await tx.commit()

        variants = {"alone": alone, "emitted": emitted, "same statement": same_statement}
        await _rate(pg, conn, database, clients, 1.0, emitted)  # warm up the pool
        totals = {name: [0, 0.0] for name in variants}
        for _ in range(rounds):
            for name, transaction in variants.items():
                done, cpu = await _rate(pg, conn, database, clients, seconds, transaction)
                totals[name][0] += done
                totals[name][1] += cpu
        per = {name: cpu * 1000 / done for name, (done, cpu) in totals.items()}
        throughput = {name: done / (rounds * seconds) for name, (done, _cpu) in totals.items()}
        report.add(
            SECTION,
            f"state change alone (UPDATE one of {COUNTERS} counters; BEGIN, UPDATE, COMMIT on "
            f"asyncpg), {clients} clients, {rounds} rounds of {seconds:g} s alternating",
            f"{throughput['alone']:,.0f} transactions/s; {per['alone']:.3f} CPU-ms per "
            "transaction (client + PostgreSQL)",
        )
        report.add(
            SECTION,
            "the same with its event emitted (libs/pg.py: outbox INSERT of its own at commit)",
            f"{throughput['emitted']:,.0f} transactions/s; {per['emitted']:.3f} CPU-ms "
            f"(+{per['emitted'] - per['alone']:.3f}); ratio {per['emitted'] / per['alone']:.2f}x",
        )
        report.add(
            SECTION,
            "the same with the outbox row in the state change's statement "
            "(libs/platform_tables.outbox_insert_cte)",
            f"{throughput['same statement']:,.0f} transactions/s; "
            f"{per['same statement']:.3f} CPU-ms (+{per['same statement'] - per['alone']:.3f}); "
            f"ratio {per['same statement'] / per['alone']:.2f}x (goal ≤ 1.15)",
        )
    finally:
        await conn.close()
        await pg.close()
        await drop_database(url)
