"""Consumer benchmark: each consumer that reacts to an order at sale speed — member (history,
points, tiers), distribution (commissions, statistics), gateway (channel push queue) and
order (stock changes that may wake unfillable orders) — against its service running as its
own OS process, draining a backlog.

The events are put on the producing service's topic as its relay would (same envelope, key
and ``event_type`` header; tests/bench/raw_events.py), faster than a consumer drains them,
so the figure is the consumer's own pace: events applied per second from the first publish
to the last inbox row, and the CPU the service process (and the PostgreSQL backends of its
database) spent meanwhile, per event. Sizes: OMNI_BENCH_CONSUMER_EVENTS (default 20,000)
events per consumer (returns: half as many). Then member and distribution at the flash
sale's pace: 5,000 completed orders written through order's outbox at 500/s and relayed,
each event's delay from its commit to its effect's transaction (from the outbox and inbox
rows themselves).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
import grpc
from google.protobuf.message import Message
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from omni.inventory.v1 import events_pb2 as inventory_events
from omni.inventory.v1 import inventory_pb2

from libs.config import SERVICES
from libs.db import asyncpg_connect_kwargs, drop_database
from libs.local_stack import free_port
from libs.pg import Pg
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess, eventually
from tests.bench.cpu import CpuMeter, backend_pids
from tests.bench.raw_events import publish
from tests.bench.report import Report, percentile
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
from tests.integration.member.conftest import order_completed, return_received

SECTION = "consumers"
# The flash sale's order rate (issue 13: 500 orders/s on the 2-core machine), for 10 s.
PACED_RATE, PACED_SECONDS = 500, 10


@dataclass(frozen=True)
class Drained:
    events: int
    seconds: float
    process_cpu: float
    database_cpu: float

    def figure(self) -> str:
        return (
            f"{self.events / self.seconds:,.0f} events/s; CPU-ms per event: process "
            f"{self.process_cpu * 1000 / self.events:.3f}, PostgreSQL "
            f"{self.database_cpu * 1000 / self.events:.3f} ({self.events:,} events, "
            f"{self.seconds:.1f} s)"
        )


async def drain(
    stack: TestStack,
    server: ServiceSubprocess,
    service: str,
    group: str,
    producer: str,
    events: Sequence[tuple[Message, str]],
    expected: int,
) -> Drained:
    """Publish ``events`` to ``producer``'s topic and wait until ``service``'s consumer
    ``group`` has ``expected`` more inbox rows; time and CPU from the first publish."""
    settings = stack.settings(service)
    url = settings.database_url()
    database = str(url.database)
    conn = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    group_id = settings.consumer_group(group)
    count = "SELECT count(*) FROM inbox WHERE consumer_group = $1"
    try:
        before = int(await conn.fetchval(count, group_id))
        process = CpuMeter([server.process.pid])
        postgres = CpuMeter()
        process.start()
        postgres.start(await backend_pids(conn, database))
        began = time.perf_counter()
        await publish(stack.kafka_bootstrap, producer, settings.topic(producer), events)

        async def applied() -> None:
            assert int(await conn.fetchval(count, group_id)) - before >= expected

        await eventually(applied, timeout=900, interval=0.05)
        elapsed = time.perf_counter() - began
        postgres.stop(await backend_pids(conn, database))
        process.stop()
        return Drained(expected, elapsed, process.seconds, postgres.seconds)
    finally:
        await conn.close()


async def paced(
    stack: TestStack,
    producer: Producer,
    service: str,
    group: str,
    events: Sequence[tuple[Message, str]],
    rate: int,
) -> str:
    """Write ``events`` through the producer's outbox at ``rate`` per second (a hot-path
    transaction of five every 5/rate s; the producer's relay publishes them) and report,
    from the rows themselves, the delay from each event's commit at the producer (outbox
    ``created_at``) to its effect's transaction at the consumer (inbox ``applied_at``)."""
    settings = stack.settings(service)
    group_id = settings.consumer_group(group)
    # The hot-path transaction (libs/pg.py) the order path writes its events with.
    pg = Pg(
        producer.settings.database_url(),
        producer=producer.service,
        topic=producer.settings.topic(producer.service),
        relay_wakeup=producer.relay.wakeup,
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        for start in range(0, len(events), 5):
            async with pg.transaction() as tx:
                for message, key in events[start : start + 5]:
                    tx.emit(message, key)
                await tx.commit()
            pause = began + (start + 5) / rate - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
    finally:
        await pg.close()
    conn = await asyncpg.connect(**asyncpg_connect_kwargs(settings.database_url()))
    source = await asyncpg.connect(**asyncpg_connect_kwargs(producer.settings.database_url()))
    try:

        async def all_applied() -> tuple[list[float], list[float]]:
            outbox = {
                str(r["event_id"]): (r["created_at"], r["published_at"])
                for r in await source.fetch(
                    "SELECT event_id, created_at, published_at FROM outbox"
                    " WHERE created_at >= now() - interval '10 minutes'"
                )
            }
            rows = await conn.fetch(
                "SELECT event_id, applied_at FROM inbox WHERE consumer_group = $1", group_id
            )
            total, relayed = [], []
            for r in rows:
                found = outbox.get(str(r["event_id"]))
                if found is None or found[1] is None:
                    continue
                total.append((r["applied_at"] - found[0]).total_seconds())
                relayed.append((found[1] - found[0]).total_seconds())
            assert len(total) >= len(events), f"{len(total)} of {len(events)}"
            return total, relayed

        total, relayed = await eventually(all_applied, timeout=300, interval=0.2)
    finally:
        await conn.close()
        await source.close()

    def summary(seconds: list[float]) -> str:
        ms = sorted(d * 1000 for d in seconds)
        return f"p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms"

    return (
        f"{summary(total)}, max {max(total) * 1000:.0f} ms ({len(events):,} events at "
        f"{rate}/s; of which commit → relayed: {summary(relayed)})"
    )


async def started(
    exits: AsyncExitStack, stack: TestStack, service: str, **env: str
) -> ServiceSubprocess:
    server = ServiceSubprocess(
        service, {**stack.env(), **env}, REPO / ".omni" / f"bench-consumers-{service}.log"
    )

    async def stop() -> None:
        server.terminate()
        server.wait()

    exits.push_async_callback(stop)
    await server.wait_serving()
    return server


async def member(stack: TestStack, report: Report, n: int) -> None:
    members = 2000
    async with AsyncExitStack() as exits:
        server = await started(exits, stack, "member")
        url = stack.settings("member").database_url()
        conn = await asyncpg.connect(**asyncpg_connect_kwargs(url))
        try:
            await conn.execute(
                "INSERT INTO members (member_id, phone, name, source, distributor_id,"
                " owner_guide_staff_id, owner_store_id, tier, points_balance,"
                " stored_value_minor, lifetime_spend_minor, order_count, consents, state,"
                " created_at)"
                " SELECT 'BM' || g, '+86139' || lpad(g::text, 8, '0'), 'bench', 1, '', '', '',"
                " 1, 0, 0, 0, 0, '{}', 1, now() FROM generate_series(1, $1) AS g",
                members,
            )
        finally:
            await conn.close()
        tag = uuid.uuid4().hex[:6].upper()
        orders = [
            (
                order_completed(
                    f"BO{tag}-{i}", f"BM{i % members + 1}", 19_900 + i % 7, ("PHONE", "CASE")
                ),
                f"BO{tag}-{i}",
            )
            for i in range(n)
        ]
        drained = await drain(stack, server, "member", "order-events", "order", orders, n)
        report.add(
            SECTION,
            f"member: OrderCompleted → history, categories, points, tiers ({members:,} members)",
            drained.figure(),
        )
        returns = [
            (
                return_received(f"BR{tag}-{i}", f"BO{tag}-{i}", f"BM{i % members + 1}", 5_000),
                f"BO{tag}-{i}",
            )
            for i in range(n // 2)
        ]
        drained = await drain(stack, server, "member", "order-events", "order", returns, n // 2)
        report.add(
            SECTION, "member: OrderReturnReceived → points reversed, spend", drained.figure()
        )
        order_events = await exits.enter_async_context(Producer(stack, "order"))
        steady = [
            (order_completed(f"BP{tag}-{i}", f"BM{i % members + 1}", 9_900), f"BP{tag}-{i}")
            for i in range(PACED_RATE * PACED_SECONDS)
        ]
        report.add(
            SECTION,
            "member: order completed (outbox commit) → points and history committed, "
            "outbox → relay → broker → consumer at a steady rate",
            await paced(stack, order_events, "member", "order-events", steady, PACED_RATE),
        )


async def distribution(stack: TestStack, report: Report, n: int) -> None:
    u = uuid.uuid4().hex[:8].upper()
    async with AsyncExitStack() as exits:
        server = await started(exits, stack, "distribution")
        channel = await exits.enter_async_context(grpc.aio.insecure_channel(server.address))
        member_events = await exits.enter_async_context(Producer(stack, "member"))
        api = Api(channel, "platform-admin")
        w = await build_world(api, u)
        await set_rules(api, w)
        member_id = w.id("M")
        await member_events.emit(member_id, registered(member_id, w.id("G1"), w.id("S1")))
        await wait_member_projected(stack, member_id)
        built = [
            order(
                w.id(f"B{i}"),
                channel=3,
                mode=1,
                member_id=member_id,
                selling_store=w.id("S1"),
                fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
            )
            for i in range(n)
        ]
        drained = await drain(
            stack,
            server,
            "distribution",
            "order-events",
            "order",
            [(completed(o), o.order_id) for o in built],
            n,
        )
        report.add(
            SECTION,
            "distribution: OrderCompleted → commissions (flow 1, 3 roles), entries, statistics",
            drained.figure(),
        )
        drained = await drain(
            stack,
            server,
            "distribution",
            "order-events",
            "order",
            [
                (returned(o.order_id, f"R-{o.order_id}", [("L1", 1)]), o.order_id)
                for o in built[: n // 2]
            ],
            n // 2,
        )
        report.add(SECTION, "distribution: OrderReturnReceived → claw-backs", drained.figure())
        order_events = await exits.enter_async_context(Producer(stack, "order"))
        steady = [
            (
                completed(
                    order(
                        w.id(f"P{i}"),
                        channel=3,
                        mode=1,
                        member_id=member_id,
                        selling_store=w.id("S1"),
                        fulfilments=[("F1", w.id("LOC-S1"), ["L1", "L2"])],
                    )
                ),
                w.id(f"P{i}"),
            )
            for i in range(PACED_RATE * PACED_SECONDS)
        ]
        report.add(
            SECTION,
            "distribution: order completed (outbox commit) → commissions committed, "
            "outbox → relay → broker → consumer at a steady rate",
            await paced(stack, order_events, "distribution", "order-events", steady, PACED_RATE),
        )


async def gateway(stack: TestStack, report: Report, n: int) -> None:
    channels, skus = 20, 10
    tag = uuid.uuid4().hex[:6].upper()
    async with AsyncExitStack() as exits:
        server = await started(
            exits,
            stack,
            "gateway",
            OMNI_GATEWAY_HTTP_PORT=str(free_port()),
            # The queue is measured, not the deliveries: the pusher stays asleep.
            OMNI_GATEWAY_PUSH_POLL_SECONDS="3600",
        )
        channel = await exits.enter_async_context(grpc.aio.insecure_channel(server.address))
        stub = gw_grpc.GatewayServiceStub(channel)
        ids = [f"BCH-{tag}-{i}" for i in range(channels)]
        for channel_id in ids:
            await stub.CreateChannel(
                gw_svc.CreateChannelRequest(
                    request_id=uuid.uuid4().hex,
                    channel=gw.Channel(
                        channel_id=channel_id,
                        kind=gw.CHANNEL_KIND_OWN_ONLINE,
                        connector=gw.CONNECTOR_TYPE_WEB_MALL,
                        push_endpoint="http://127.0.0.1:9/push",
                    ),
                )
            )
        events = [
            (
                inventory_events.StockChangedEvent(
                    stock_level=inventory_pb2.StockLevel(
                        location_id="WH", sku_code=f"HOT-{tag}-{i % skus}", available=n - i
                    ),
                    channels=ids,
                    cause="reserved",
                ),
                f"HOT-{tag}-{i % skus}",
            )
            for i in range(n)
        ]
        drained = await drain(stack, server, "gateway", "channel-sync", "inventory", events, n)
        report.add(
            SECTION,
            f"gateway: StockChanged → channel push queue ({skus} hot SKUs x {channels} "
            "channels, coalesced)",
            drained.figure(),
        )


async def order_service(stack: TestStack, report: Report, n: int) -> None:
    async with AsyncExitStack() as exits:
        server = await started(exits, stack, "order")
        for skus in (10, 1000):
            tag = uuid.uuid4().hex[:6].upper()
            events: list[tuple[Message, str]] = []
            for i in range(n):
                sku = f"SKU-{tag}-{i % skus}"
                events.append(
                    (
                        inventory_events.StockChangedEvent(
                            stock_level=inventory_pb2.StockLevel(
                                location_id="WH", sku_code=sku, available=i % 50
                            ),
                            channels=["MALL"],
                            cause="reserved",
                        ),
                        sku,
                    )
                )
                if i % 4 == 0:
                    # Order does not subscribe to transfers: dropped from the header.
                    events.append(
                        (
                            inventory_events.TransferShippedEvent(
                                transfer=inventory_pb2.Transfer(transfer_id=f"T{tag}-{i}")
                            ),
                            f"T{tag}-{i}",
                        )
                    )
            drained = await drain(
                stack, server, "order", "inventory-events", "inventory", events, n
            )
            report.add(
                SECTION,
                f"order: StockChanged over {skus:,} SKUs → wake unfillable orders (plus "
                f"{n // 4:,} transfer events it ignores)",
                drained.figure(),
            )


CONSUMERS: dict[str, Callable[[TestStack, Report, int], Awaitable[None]]] = {
    "member": member,
    "distribution": distribution,
    "gateway": gateway,
    "order": order_service,
}


async def run(stack: TestStack, report: Report) -> None:
    n = int(os.environ.get("OMNI_BENCH_CONSUMER_EVENTS", "20000"))
    only = os.environ.get("OMNI_BENCH_CONSUMERS", "")
    for name, bench in CONSUMERS.items():
        if only and name not in only.split(","):
            continue
        print(f"-- {name}", flush=True)
        # Topics and databases of its own: a consumer reads its producer's whole topic from
        # the start, and must not meet the events another consumer's benchmark put there.
        own = TestStack(stack.pg_dsn, stack.kafka_bootstrap, f"{stack.run_id}{name[:3]}")
        try:
            await bench(own, report, n)
        finally:
            for service in SERVICES:
                await drop_database(own.settings(service).database_url())
