"""The whole platform as separate OS processes for a benchmark: the six services started with
``python -m services.<name>`` (as ``make run`` does) on the benchmark's PostgreSQL and broker,
each on its own ports, and the process ids of everything that makes up the platform
(services, PostgreSQL's postmaster, the broker) for CPU accounting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path

import asyncpg

from libs.config import SERVICES
from libs.local_stack import free_port
from libs.testing.plugin import TestStack
from libs.testing.services import ServiceSubprocess
from tests.bench import processes

STOP_TIMEOUT_S = 30


class ServiceProcesses:
    """The six services, each its own OS process, wired to each other by address."""

    def __init__(self, stack: TestStack, log_dir: Path) -> None:
        self.grpc_ports = {name: free_port() for name in SERVICES}
        self.metrics_ports = {name: free_port() for name in SERVICES}
        self.http_port = free_port()
        self.env = {**stack.env(), "OMNI_GATEWAY_HTTP_PORT": str(self.http_port)}
        for name in SERVICES:
            upper = name.upper()
            self.env[f"OMNI_{upper}_GRPC_PORT"] = str(self.grpc_ports[name])
            self.env[f"OMNI_{upper}_ADDR"] = f"127.0.0.1:{self.grpc_ports[name]}"
            self.env[f"OMNI_{upper}_METRICS_PORT"] = str(self.metrics_ports[name])
        self.log_dir = log_dir
        self.processes: dict[str, ServiceSubprocess] = {}

    def start(self) -> None:
        for name in SERVICES:
            self.processes[name] = ServiceSubprocess(
                name, self.env, self.log_dir / f"bench-flash-sale-{name}.log"
            )

    async def wait_serving(self) -> None:
        await asyncio.gather(*(p.wait_serving(timeout=120) for p in self.processes.values()))

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_ports[name]}"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.process.pid for name, p in self.processes.items()}

    def check_alive(self) -> None:
        """Fail fast (with the log's tail) if a service died: its figures would be lies."""
        for name, p in self.processes.items():
            if p.process.poll() is not None:
                tail = p.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {p.process.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM to all at once, then wait; whatever does not stop in time is killed."""
        for p in self.processes.values():
            p.terminate()
        for p in self.processes.values():
            try:
                p.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(STOP_TIMEOUT_S)

    def service_env_summary(self) -> str:
        """The OMNI_* and OTEL_* variables the services get (ports summarised), for the
        report: the harness's own and any inherited from the caller's environment."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("OMNI_", "OTEL_")) and not key.startswith("OMNI_BENCH_")
        }
        per_service = ("_GRPC_PORT", "_ADDR", "_METRICS_PORT")
        shown = [
            f"{key}={value}"
            for key, value in sorted({**inherited, **self.env}.items())
            if key.startswith(("OMNI_", "OTEL_"))
            and not key.endswith(per_service)
            and key != "OMNI_GATEWAY_HTTP_PORT"
        ]
        return (
            ", ".join(shown) + "; per service OMNI_<SVC>_GRPC_PORT, OMNI_<SVC>_ADDR, "
            "OMNI_<SVC>_METRICS_PORT and OMNI_GATEWAY_HTTP_PORT on free ports; "
            "everything else at its default"
        )


async def postmaster_pid(pg_dsn: str) -> int | None:
    """The PostgreSQL server's postmaster, as the parent of a backend we connect to; None when
    the server is not a process on this machine (its CPU cannot be measured then)."""
    connection = await asyncpg.connect(pg_dsn)
    try:
        # Read while connected: the backend exits when the connection closes.
        backend = processes.read_stat(int(await connection.fetchval("SELECT pg_backend_pid()")))
    finally:
        await connection.close()
    if backend is None or "postgres" not in backend.comm:
        return None
    return backend.ppid


def broker_pid(bootstrap: str) -> int | None:
    """The broker process listening on the bootstrap port, if it runs on this machine."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        return None
    return processes.listening_pid(int(port))


async def platform_pids(stack: TestStack, services: ServiceProcesses) -> dict[str, int]:
    """The six services, plus PostgreSQL and the broker where they run on this machine
    (their CPU cannot be read otherwise; the report lists what was measured)."""
    pids = dict(services.pids)
    postgres = await postmaster_pid(stack.pg_dsn)
    if postgres is not None:
        pids["postgres"] = postgres
    broker = broker_pid(stack.kafka_bootstrap)
    if broker is not None:
        pids["broker"] = broker
    return pids
