"""``python -m tests.bench [name ...]``: run benchmarks against the embedded (or external)
PostgreSQL and broker and write the figures to bench-results.md."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import pkgutil
import sys
import traceback
import uuid
from pathlib import Path

from libs.config import SERVICES
from libs.db import drop_database
from libs.local_stack import EmbeddedBroker, EmbeddedPostgres, free_port
from libs.testing.plugin import REPO, TestStack
from tests.bench.report import Report

RESULTS = REPO / "bench-results.md"
# Helpers of the benchmarks, not benchmarks.
NOT_BENCHMARKS = {"report", "__main__", "cpu", "raw_events", "relay_process"}


def discover() -> list[str]:
    """Every module of this package with a ``run(stack, report)`` coroutine; the others are
    helpers (report, processes, ...). A module that fails to import is listed, so that its
    run reports the error like any failing benchmark."""
    package = Path(__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(package)]) if m.name not in NOT_BENCHMARKS]
    return sorted(name for name in names if _is_benchmark(name))


def _is_benchmark(name: str) -> bool:
    try:
        module = importlib.import_module(f"tests.bench.{name}")
    except Exception:
        return True
    return inspect.iscoroutinefunction(getattr(module, "run", None))


async def run_all(names: list[str], base: TestStack) -> tuple[Report, list[str]]:
    """Each benchmark in its own databases and topics (one's backlog must not slow the next);
    a failing benchmark is reported and the others still run."""
    report = Report()
    failed: list[str] = []
    for index, name in enumerate(names):
        stack = TestStack(base.pg_dsn, base.kafka_bootstrap, f"{base.run_id}b{index}")
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name}", flush=True)
        try:
            await module.run(stack, report)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        finally:
            for service in SERVICES:
                await drop_database(stack.settings(service).database_url())
    return report, failed


def main() -> None:
    names = sys.argv[1:] or discover()
    pg = None if os.environ.get("OMNI_PG_DSN") else EmbeddedPostgres(REPO / ".omni" / "bench-pg")
    broker = (
        None
        if os.environ.get("OMNI_KAFKA_BOOTSTRAP")
        else EmbeddedBroker(free_port(), REPO / ".omni" / "bench-broker.log")
    )
    stack = TestStack(
        pg_dsn=os.environ.get("OMNI_PG_DSN") or (pg.dsn if pg else ""),
        kafka_bootstrap=os.environ.get("OMNI_KAFKA_BOOTSTRAP")
        or (broker.bootstrap if broker else ""),
        run_id=uuid.uuid4().hex[:8],
    )
    try:
        report, failed = asyncio.run(run_all(names, stack))
        report.write(RESULTS)
        print(f"figures written to {RESULTS}")
        if failed:
            sys.exit(f"benchmarks failed: {', '.join(failed)}")
    finally:
        if broker:
            broker.stop()
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
