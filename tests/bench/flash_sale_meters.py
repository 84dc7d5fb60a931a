"""What the flash-sale harness reads about the running platform: CPU seconds per process
(/proc), transactions per service database (pg_stat_database), and the quiescence probes
(outbox backlog, consumer lag) — opened once, before anything is measured."""

from __future__ import annotations

import time
from dataclasses import dataclass

from libs.config import SERVICES
from libs.testing.plugin import TestStack
from tests.bench import processes
from tests.bench.pg_stats import TransactionCounts
from tests.bench.quiescence import ConsumerLag, OutboxBacklog
from tests.bench.service_processes import ServiceProcesses


@dataclass(frozen=True)
class Reading:
    """CPU seconds per process and transactions per database at one moment, with the
    transactions the harness's own probes had made by then."""

    at: float
    cpu: dict[str, float]
    xacts: dict[str, int]
    probe_xacts: dict[str, int]


@dataclass(frozen=True)
class Window:
    start: Reading
    end: Reading

    @property
    def seconds(self) -> float:
        return self.end.at - self.start.at

    def cpu(self) -> dict[str, float]:
        return processes.delta(self.start.cpu, self.end.cpu)

    def cpu_rates(self) -> dict[str, float]:
        return {p: v / self.seconds for p, v in self.cpu().items()}

    def xacts(self) -> dict[str, int]:
        """Transactions of the platform itself: the harness's probes are taken out."""
        return {
            s: (self.end.xacts[s] - self.start.xacts[s])
            - (self.end.probe_xacts[s] - self.start.probe_xacts[s])
            for s in self.start.xacts
        }

    def xact_rates(self) -> dict[str, float]:
        return {s: v / self.seconds for s, v in self.xacts().items()}


class Meters:
    def __init__(self, stack: TestStack, platform: ServiceProcesses, pids: dict[str, int]):
        self.pids = pids
        self.platform = platform
        settings = {s: stack.settings(s) for s in SERVICES}
        self.outbox = OutboxBacklog(
            {
                s: settings[s]
                .database_url()
                .set(drivername="postgresql")
                .render_as_string(hide_password=False)
                for s in SERVICES
            }
        )
        self.xacts = TransactionCounts(
            stack.pg_dsn, {s: settings[s].database_name for s in SERVICES}
        )
        self.topic_prefix = settings["order"].topic_prefix
        self.lag = ConsumerLag(stack.kafka_bootstrap, self.topic_prefix)

    async def start(self) -> None:
        """Connect the probes (close() undoes whatever part of this was done)."""
        await self.outbox.open()
        await self.xacts.open()
        await self.lag.start()
        await self.lag.learn_subscriptions([self.platform.metrics_url(s) for s in SERVICES])

    async def close(self) -> None:
        await self.lag.close()
        await self.xacts.close()
        await self.outbox.close()

    def cpu_total(self) -> float:
        return sum(processes.sample(self.pids).values())

    async def read(self) -> Reading:
        cpu = processes.sample(self.pids)
        return Reading(time.time(), cpu, await self.xacts.read(), dict(self.outbox.transactions))

    async def dead_lettered(self) -> int:
        """Events in every dead-letter topic of the run."""
        topics = {f"{self.topic_prefix}omni.{s}.dlq" for s in SERVICES}
        return sum((await self.lag.end_offsets(topics)).values())
