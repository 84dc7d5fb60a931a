"""pytest plugin: real PostgreSQL and a real broker for every test session.

Embedded by default; ``OMNI_PG_DSN`` / ``OMNI_KAFKA_BOOTSTRAP`` point the suite at external
ones instead. Each session gets its own database prefix and topic prefix, so runs sharing a
server never see each other's data.

Service processes that tests start run on the services' own event loop (uvloop unless
``OMNI_EVENT_LOOP`` says otherwise). The tests' loop, and so the services a test runs in its
own process, is asyncio's unless ``OMNI_EVENT_LOOP`` is set for the test run: then it is
that loop too (``OMNI_EVENT_LOOP=uvloop make test``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.config import SERVICES, Settings, event_loop
from libs.db import drop_database
from libs.event_loop import LOOP_FACTORIES
from libs.local_stack import EmbeddedBroker, EmbeddedPostgres, free_port

REPO = Path(__file__).resolve().parents[2]


class _EventLoopOfTheRun:
    """pytest-asyncio's hook for the loop of every test, registered only when the run names
    one (without it, pytest-asyncio's own default stays untouched)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @pytest.hookimpl
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {self.name: LOOP_FACTORIES[self.name]}


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("OMNI_EVENT_LOOP"):
        config.pluginmanager.register(_EventLoopOfTheRun(event_loop(os.environ)))


@dataclass
class TestStack:
    pg_dsn: str
    kafka_bootstrap: str
    run_id: str

    def env(self) -> dict[str, str]:
        """Environment for a service process started by a test."""
        return {
            "OMNI_PG_DSN": self.pg_dsn,
            "OMNI_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "OMNI_DATABASE_PREFIX": f"omni_t{self.run_id}_",
            "OMNI_TOPIC_PREFIX": f"t{self.run_id}.",
            "OMNI_SHUTDOWN_DRAIN_SECONDS": "0",
        }

    def settings(self, service: str, **overrides: object) -> Settings:
        env = {**os.environ, **self.env()}
        for name in SERVICES:
            env[f"OMNI_{name.upper()}_GRPC_PORT"] = "0"
            env[f"OMNI_{name.upper()}_METRICS_PORT"] = "-1"
        return Settings.from_env(service, env).with_overrides(**overrides)


@pytest.fixture(scope="session")
def test_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestStack]:
    run_id = uuid.uuid4().hex[:8]
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    pg_dsn = os.environ.get("OMNI_PG_DSN")
    if not pg_dsn:
        pg = EmbeddedPostgres(REPO / ".omni" / "test-pg")
        pg_dsn = pg.dsn
    bootstrap = os.environ.get("OMNI_KAFKA_BOOTSTRAP")
    if not bootstrap:
        log_dir = tmp_path_factory.mktemp("broker")
        broker = EmbeddedBroker(free_port(), log_dir / "tansu.log")
        bootstrap = broker.bootstrap
    stack = TestStack(pg_dsn=pg_dsn, kafka_bootstrap=bootstrap, run_id=run_id)
    try:
        yield stack
    finally:
        for service in SERVICES:
            url = stack.settings(service).database_url()
            asyncio.run(drop_database(url))
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()


@pytest.fixture
async def unique() -> AsyncIterator[str]:
    """A short unique token for ids, so tests share one database without colliding."""
    yield uuid.uuid4().hex[:10].upper()
