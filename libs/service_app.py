"""One way to run a service process: database and migrations, outbox relay, consumers,
gRPC server, metrics endpoint and background tasks, started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from libs.config import Settings, all_topics
from libs.consumer import InboxConsumer, Subscriber
from libs.db import Database, ensure_database, migrate
from libs.event_loop import run as run_on_event_loop
from libs.grpc_server import GrpcServer, start_grpc_server
from libs.json_logging import setup_logging
from libs.messaging import ensure_topics, make_producer, start_with_retry
from libs.metrics import serve_metrics
from libs.outbox_relay import OutboxRelay
from libs.pg import Pg
from libs.telemetry import flush_tracing, setup_tracing
from libs.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer group of this service: what it reads and which use case each event drives
    (per event, or in bulk: libs/consumer.py)."""

    purpose: str
    producers: Sequence[str]
    subscriptions: Mapping[type[Message], Subscriber]


@dataclass
class Runtime:
    """What a running service shares between its servicers, consumers and tasks."""

    settings: Settings
    db: Database
    producer: AIOKafkaProducer
    uow_factory: UnitOfWorkFactory
    relay: OutboxRelay
    # Hot paths: plain asyncpg on the same database (libs/pg.py).
    pg: Pg


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    grpc_service_name: str
    migrations_dir: Path
    register: Callable[[grpc.aio.Server, Runtime], None]
    consumers: Callable[[Runtime], Sequence[ConsumerSpec]] = field(default=lambda _rt: ())
    background: Callable[[Runtime], Sequence[Coroutine[Any, Any, None]]] = field(
        default=lambda _rt: ()
    )


class ServiceProcess:
    """A started service. ``await ServiceProcess.start(definition, settings)``; ``await stop()``."""

    def __init__(self, definition: ServiceDefinition, settings: Settings) -> None:
        self.definition = definition
        self.settings = settings
        self.runtime: Runtime
        self.grpc: GrpcServer
        self.consumers: list[InboxConsumer] = []
        self.metrics_port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._relay_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.grpc.port

    @classmethod
    async def start(cls, definition: ServiceDefinition, settings: Settings) -> ServiceProcess:
        process = cls(definition, settings)
        await process._start()
        return process

    async def _start(self) -> None:
        settings = self.settings
        setup_tracing(settings)
        url = settings.database_url()
        await ensure_database(url)
        await migrate(url, self.definition.migrations_dir)
        db = Database(url)
        bootstrap = settings.require_kafka()
        await ensure_topics(bootstrap, all_topics(settings.topic_prefix))
        producer = make_producer(bootstrap)
        await start_with_retry(producer)
        wakeup = asyncio.Event()
        relay = OutboxRelay(db, producer, settings.service, wakeup=wakeup)
        uow_factory = UnitOfWorkFactory(
            db, settings.service, settings.topic(settings.service), wakeup
        )
        pg = Pg(
            url,
            producer=settings.service,
            topic=settings.topic(settings.service),
            relay_wakeup=wakeup,
        )
        await pg.start()
        self.runtime = Runtime(settings, db, producer, uow_factory, relay, pg)
        self._relay_task = asyncio.create_task(relay.run_forever(), name="outbox-relay")

        for spec in self.definition.consumers(self.runtime):
            consumer = InboxConsumer(
                service=settings.service,
                group_id=settings.consumer_group(spec.purpose),
                topics=[settings.topic(p) for p in spec.producers],
                subscriptions=spec.subscriptions,
                uow_factory=uow_factory,
                pg=pg,
                bootstrap=bootstrap,
                dead_letter_topic=settings.dead_letter_topic(),
                dead_letter_producer=producer,
            )
            await consumer.start()
            self.consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run(), name=f"consumer-{spec.purpose}"))
        for coroutine in self.definition.background(self.runtime):
            self._tasks.append(asyncio.create_task(coroutine))

        self.grpc = await start_grpc_server(
            service=settings.service,
            service_names=[self.definition.grpc_service_name],
            register=lambda server: self.definition.register(server, self.runtime),
            host=settings.grpc_host,
            port=settings.grpc_port,
            max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
            slow_rpc_seconds=settings.slow_rpc_seconds,
        )
        if settings.metrics_port >= 0:
            self.metrics_port = serve_metrics(settings.metrics_host, settings.metrics_port)
        log.info(
            "service started",
            extra={"grpc_port": self.grpc.port, "metrics_port": self.metrics_port},
        )

    async def stop(self, drain_seconds: float | None = None) -> None:
        settings = self.settings
        await self.grpc.stop(
            settings.shutdown_drain_seconds if drain_seconds is None else drain_seconds,
            settings.shutdown_grace_seconds,
        )
        for consumer in self.consumers:
            await consumer.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.runtime.relay.stop()
        if self._relay_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._relay_task, timeout=5)
        await self.runtime.producer.stop()
        await self.runtime.pg.close()
        await self.runtime.db.dispose()
        flush_tracing()
        log.info("service stopped")


def main(definition: ServiceDefinition) -> None:
    """Process entry point: run the service until SIGTERM or SIGINT, then stop gracefully."""
    settings = Settings.from_env(definition.name)
    setup_logging(definition.name, settings.log_level)

    async def run() -> None:
        process = await ServiceProcess.start(definition, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping on signal")
        await process.stop()

    run_on_event_loop(run(), settings.event_loop)
