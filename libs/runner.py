"""``make run``: the whole platform on one machine.

Starts embedded PostgreSQL and the embedded broker (unless OMNI_PG_DSN / OMNI_KAFKA_BOOTSTRAP
point elsewhere), creates the topics, starts the six services as separate processes (each
creates and migrates its own database), waits until all report SERVING, loads the demo data
and prints every endpoint. Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config import SERVICES, Settings, all_topics, event_loop
from libs.event_loop import run as run_on_event_loop
from libs.local_stack import (
    DEFAULT_BROKER_PORT,
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    port_is_open,
)
from libs.messaging import ensure_topics

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120


def say(message: str) -> None:
    print(f"[omni] {message}", flush=True)


class Platform:
    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.state_dir = (REPO / self.env.get("OMNI_STATE_DIR", ".omni")).resolve()
        self.pg: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested: list[bool] = []
        self.event_loop = event_loop(self.env)

    def checkpoint(self) -> None:
        if self.stop_requested:
            raise Interrupted

    def start_infrastructure(self) -> None:
        if not self.env.get("OMNI_PG_DSN"):
            say(f"starting embedded PostgreSQL (data in {self.state_dir / 'pgdata'})")
            self.pg = EmbeddedPostgres(self.state_dir / "pgdata")
            self.env["OMNI_PG_DSN"] = self.pg.dsn
        else:
            say("using external PostgreSQL from OMNI_PG_DSN")
        if not self.env.get("OMNI_KAFKA_BOOTSTRAP"):
            port = int(self.env.get("OMNI_BROKER_PORT", DEFAULT_BROKER_PORT))
            if port_is_open("127.0.0.1", port):
                port = free_port()
            say(f"starting embedded broker (tansu, memory-only) on 127.0.0.1:{port}")
            self.broker = EmbeddedBroker(port, self.state_dir / "logs" / "broker.log")
            self.env["OMNI_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
        else:
            say("using external Kafka from OMNI_KAFKA_BOOTSTRAP")
        run_on_event_loop(
            ensure_topics(
                self.env["OMNI_KAFKA_BOOTSTRAP"], all_topics(self.env.get("OMNI_TOPIC_PREFIX", ""))
            ),
            self.event_loop,
        )

    def start_services(self) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"}
        for name in SERVICES:
            log_file = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - child keeps it
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=REPO,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            log_file.close()
        say(f"started {len(SERVICES)} services; logs in {logs}")

    def settings(self, name: str) -> Settings:
        return Settings.from_env(name, self.env)

    async def wait_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        pending = set(SERVICES)
        while pending:
            for name in sorted(pending):
                child = self.children[name]
                if child.poll() is not None:
                    log = self.state_dir / "logs" / f"{name}.log"
                    raise RuntimeError(f"{name} exited with {child.returncode}; see {log}")
                if await _is_serving(f"127.0.0.1:{self.settings(name).grpc_port}"):
                    pending.discard(name)
                    say(f"{name} is SERVING")
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {STARTUP_TIMEOUT_S}s: {sorted(pending)}")
            self.checkpoint()
            await asyncio.sleep(0.3)

    def load_demo_data(self) -> None:
        from services import demo_data

        addresses = {name: f"127.0.0.1:{self.settings(name).grpc_port}" for name in SERVICES}
        count = run_on_event_loop(demo_data.load(addresses), self.event_loop)
        say(
            f"demo data in place ({count} SKUs, {len(demo_data.DEMO_LOCATIONS)} locations, "
            "channels DEMO-MALL and DEMO-POS; loading again changes nothing)"
        )

    def print_endpoints(self) -> None:
        lines = ["", "Omni is running:", ""]
        lines.append(f"  {'service':<13} {'gRPC':<18} metrics")
        for name in SERVICES:
            s = self.settings(name)
            lines.append(
                f"  {name:<13} 127.0.0.1:{s.grpc_port:<8} http://{s.metrics_host}:{s.metrics_port}/metrics"
            )
        gateway = self.settings("gateway")
        inventory = f"127.0.0.1:{self.settings('inventory').grpc_port}"
        lines += [
            "",
            f"  gateway HTTP  http://127.0.0.1:{gateway.gateway_http_port}  (OpenAPI at /docs)",
            f"  PostgreSQL    {self.env['OMNI_PG_DSN']}",
            f"  Kafka         {self.env['OMNI_KAFKA_BOOTSTRAP']}",
            "",
            "  Try:",
            "    .venv/bin/python -m services.demo_order      # a signed web-mall order through"
            " the gateway,",
            "                                                 # routed to the nearest store with"
            " stock",
            f"    .venv/bin/python -m libs.grpc_call {inventory} "
            'omni.inventory.v1.InventoryService/GetStockLevel \'{"location_id": '
            '"DEMO-STORE-JINGAN", "sku_code": "DEMO-TEE-RED-M"}\'',
            f"    open http://127.0.0.1:{gateway.gateway_http_port}/status   (live status page)",
            "",
            "  Ctrl-C stops everything.",
            "",
        ]
        print("\n".join(lines), flush=True)

    def watch(self, stop: list[bool]) -> int:
        while not stop:
            for name, child in self.children.items():
                if child.poll() is not None:
                    say(f"{name} exited with {child.returncode}; stopping the platform")
                    return 1
            time.sleep(0.5)
        return 0

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.1, deadline - time.monotonic()))
            if child.poll() is None:
                child.kill()
                child.wait()
        if self.broker is not None:
            self.broker.stop()
        if self.pg is not None:
            self.pg.stop()
        say("stopped")


async def _is_serving(address: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
    except grpc.aio.AioRpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the platform was starting."""


def main() -> int:
    platform = Platform()
    stop = platform.stop_requested

    def request_stop(_signum: int, _frame: object) -> None:
        # Only a flag: raising from here could land inside gRPC's C core and crash it.
        # Start-up looks at the flag between steps and while it waits.
        stop.append(True)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        for step in (
            platform.start_infrastructure,
            platform.start_services,
            lambda: run_on_event_loop(platform.wait_serving(), platform.event_loop),
            platform.load_demo_data,
        ):
            platform.checkpoint()
            step()
        platform.checkpoint()
        platform.print_endpoints()
        return platform.watch(stop)
    except Interrupted:
        say("interrupted while starting")
        return 130
    except Exception as error:
        say(f"failed: {error}")
        return 1
    finally:
        # No second Ctrl-C may cut the clean-up short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
