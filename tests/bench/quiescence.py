"""When has the platform finished the work a burst caused?

Four observable conditions, polled (never assumed after a sleep):
- every service's outbox is fully published (no row of ``libs.platform_tables.outbox``
  with ``published_at`` NULL in any service database);
- every consumer group has committed up to the end of every partition it consumes
  (committed offsets from the broker's admin API against the partitions' end offsets; which
  topics a group consumes is learned once, before measuring, from the services' own
  ``omni_consumer_lag_messages`` series, because the broker does not report subscriptions);
- any further probe the benchmark gives finds nothing in flight (the flash sale asks the
  order service for orders still mid-workflow: a capture cut short by the gateway's
  deadline is finished by order's recovery task, seconds later);
- the platform's CPU rate has settled back near its idle rate (and the channel endpoint
  received no push for as long), so trailing work — pushes, timers — is inside the window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg
import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.dialects import postgresql

from libs.platform_tables import outbox

POLL_S = 0.5
LAG_SERIES = "omni_consumer_lag_messages"
_UNPUBLISHED = str(
    sa.select(sa.func.count())
    .select_from(outbox)
    .where(outbox.c.published_at.is_(None))
    .compile(dialect=postgresql.dialect())
)


class OutboxBacklog:
    """Unpublished outbox rows per service database, over one connection per database.
    Every probe is one transaction in that database; they are counted so that the
    transactions-per-order figures can leave the harness's own out."""

    def __init__(self, dsns: Mapping[str, str]) -> None:
        self.dsns = dict(dsns)
        self.connections: dict[str, asyncpg.Connection] = {}
        self.transactions: dict[str, int] = dict.fromkeys(dsns, 0)

    async def open(self) -> None:
        for service, dsn in self.dsns.items():
            self.connections[service] = await asyncpg.connect(dsn)

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()

    async def backlog(self) -> dict[str, int]:
        counts = {}
        for service, connection in self.connections.items():
            counts[service] = int(await connection.fetchval(_UNPUBLISHED))
            self.transactions[service] += 1
        return counts


class ConsumerLag:
    """Messages not yet committed by each consumer group of the run (topic prefix)."""

    def __init__(self, bootstrap: str, topic_prefix: str) -> None:
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.subscriptions: dict[str, set[str]] = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._coordinators: dict[str, int] = {}

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self._admin.start()
        self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await self._offsets.start()

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.stop()
        if self._admin is not None:
            await self._admin.close()

    async def groups(self) -> set[str]:
        assert self._admin is not None
        listed = await self._admin.list_consumer_groups()
        return {group for group, *_ in listed if group.startswith(self.topic_prefix)}

    async def learn_subscriptions(self, metrics_urls: list[str], timeout: float = 60) -> None:
        """Which topics each group consumes, from the services' lag series; waits until every
        group the broker knows appears there (a consumer reports a partition's lag once it
        has fetched from it). A group that never does is taken to consume the topics it has
        committed offsets on, with a warning: lag on a topic it has not committed to yet
        would then go unseen."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=10) as http:
            while True:
                found: dict[str, set[str]] = {}
                for url in metrics_urls:
                    text = (await http.get(url)).text
                    for group, topic in _lag_labels(text):
                        found.setdefault(group, set()).add(topic)
                missing = await self.groups() - found.keys()
                if (found and not missing) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(POLL_S)
        for group in sorted(missing):
            found[group] = await self._committed_topics(group)
            print(
                f"warning: no {LAG_SERIES} series for consumer group {group}; "
                f"watching the topics it committed to: {sorted(found[group])}",
                flush=True,
            )
        if not found:
            print("warning: no consumer group found; consumer lag is not watched", flush=True)
        self.subscriptions = found

    async def _committed_topics(self, group: str) -> set[str]:
        assert self._admin is not None and self._offsets is not None
        topics = {t for t in await self._admin.list_topics() if t.startswith(self.topic_prefix)}
        partitions = list(await self.end_offsets(topics))
        committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        return {tp.topic for tp, meta in committed.items() if meta.offset >= 0}

    async def end_offsets(self, topics: set[str]) -> dict[TopicPartition, int]:
        assert self._offsets is not None
        partitions = [
            TopicPartition(topic, p)
            for topic in sorted(topics)
            for p in sorted(self._offsets.partitions_for_topic(topic) or ())
        ]
        ends: dict[TopicPartition, int] = await self._offsets.end_offsets(partitions)
        return ends

    async def lag(self) -> dict[str, int]:
        """Per group: end offset minus committed offset, summed over its partitions."""
        assert self._admin is not None
        topics = set().union(*self.subscriptions.values())
        ends = await self.end_offsets(topics)
        lags = {}
        for group, consumed in self.subscriptions.items():
            partitions = [tp for tp in ends if tp.topic in consumed]
            if group not in self._coordinators:
                self._coordinators[group] = await self._admin.find_coordinator(group)
            committed = await self._admin.list_consumer_group_offsets(
                group, group_coordinator_id=self._coordinators[group], partitions=partitions
            )
            lags[group] = sum(
                max(0, ends[tp] - max(0, committed[tp].offset if tp in committed else 0))
                for tp in partitions
            )
        return lags


def _lag_labels(metrics_text: str) -> list[tuple[str, str]]:
    pairs = []
    for family in text_string_to_metric_families(metrics_text):
        if family.name != LAG_SERIES:
            continue
        for sample in family.samples:
            pairs.append((sample.labels["group"], sample.labels["topic"]))
    return pairs


@dataclass
class CpuWindow:
    """A record of (time, platform CPU seconds) samples."""

    samples: list[tuple[float, float]] = field(default_factory=list)

    def add(self, at: float, cpu_seconds: float) -> None:
        self.samples.append((at, cpu_seconds))

    def _at_age(self, age: float) -> tuple[float, float] | None:
        """The latest sample at least ``age`` seconds older than the newest one."""
        newest = self.samples[-1][0]
        for at, cpu in reversed(self.samples):
            if newest - at >= age:
                return at, cpu
        return None

    def rate(self, seconds: float, ending_age: float = 0.0) -> float | None:
        """CPU seconds per second over ``seconds``, ending ``ending_age`` seconds before the
        newest sample (None until that much has been sampled)."""
        if not self.samples:
            return None
        end = self._at_age(ending_age)
        start = self._at_age(ending_age + seconds)
        if end is None or start is None or end[0] == start[0]:
            return None
        return (end[1] - start[1]) / (end[0] - start[0])


@dataclass(frozen=True)
class Quiescence:
    at: float
    reached: bool
    note: str


@dataclass
class QuiescenceWatch:
    """Polls outbox backlog, consumer lag and CPU until the platform is quiescent.

    With a known idle rate, "settled" means the CPU rate over the last ``settle_seconds``
    is at most ``idle_rate * settle_factor + settle_slack`` (cores). Before the idle rate is
    known (setting up), it means two consecutive windows agree within ``settle_factor``
    of each other plus the slack."""

    outbox: OutboxBacklog
    lag: ConsumerLag
    cpu_seconds: Callable[[], float]
    last_push_at: Callable[[], float]
    check_alive: Callable[[], None]
    # Further "still working" probes (e.g. orders mid-workflow), asked only once the CPU
    # has settled, at most once per settle window: they cost the platform a little.
    probes: list[Callable[[], Awaitable[dict[str, int]]]] = field(default_factory=list)
    idle_rate: float | None = None
    settle_seconds: float = 2.0
    settle_factor: float = 1.5
    settle_slack: float = 0.02

    async def pending(self, probes: bool = False) -> dict[str, int]:
        """What is still in flight: unpublished outbox rows and uncommitted messages (and
        what the further probes find, if asked and nothing else is pending)."""
        backlog = await self.outbox.backlog()
        lags = await self.lag.lag()
        work = {f"outbox {s}": n for s, n in backlog.items() if n}
        work.update({f"lag {g}": n for g, n in lags.items() if n})
        for probe in self.probes if probes else []:
            if work:
                break
            work.update(await probe())
        return work

    async def wait(self, drain_timeout: float, settle_timeout: float) -> Quiescence:
        drain_deadline = time.monotonic() + drain_timeout
        while True:
            self.check_alive()
            work = await self.pending()
            if not work:
                break
            if time.monotonic() > drain_deadline:
                return Quiescence(time.time(), False, f"still in flight: {work}")
            await asyncio.sleep(POLL_S)
        return await self._settle(settle_timeout)

    def settled(self, window: CpuWindow) -> tuple[bool, float | None]:
        """Whether the CPU has settled, and the latest rate (None until one is known)."""
        rate = window.rate(self.settle_seconds)
        if rate is None:
            return False, None
        if self.idle_rate is not None:
            return rate <= self.idle_rate * self.settle_factor + self.settle_slack, rate
        before = window.rate(self.settle_seconds, ending_age=self.settle_seconds)
        if before is None:
            return False, rate
        low, high = sorted((rate, before))
        return high <= low * self.settle_factor + self.settle_slack, rate

    async def _settle(self, timeout: float) -> Quiescence:
        window = CpuWindow()
        deadline = time.monotonic() + timeout
        last_probe = 0.0
        work: dict[str, int] = {}
        while True:
            now = time.time()
            window.add(now, self.cpu_seconds())
            settled, rate = self.settled(window)
            quiet = now - self.last_push_at() >= self.settle_seconds
            if settled and quiet and now - last_probe >= self.settle_seconds:
                last_probe = now
                work = await self.pending(probes=True)
                if not work:
                    assert rate is not None
                    return Quiescence(now, True, f"settled at {rate * 1000:.0f} CPU-ms/s")
            if time.monotonic() > deadline:
                shown = "n/a" if rate is None else f"{rate * 1000:.0f}"
                return Quiescence(
                    now,
                    False,
                    f"not quiescent after {timeout:.0f} s of settling "
                    f"({shown} CPU-ms/s; in flight: {work or 'nothing'})",
                )
            self.check_alive()
            await asyncio.sleep(POLL_S)
