"""`make run`'s runner: all six services SERVING, listed by reflection, demo data loaded,
and nothing left behind after SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from libs.config import SERVICES, Settings
from libs.db import drop_database
from libs.grpc_call import call
from libs.local_stack import free_port
from libs.testing.services import eventually, health_status

REPO = Path(__file__).resolve().parents[2]
GRPC_NAMES = {
    "catalog": "omni.catalog.v1.CatalogService",
    "inventory": "omni.inventory.v1.InventoryService",
    "order": "omni.order.v1.OrderService",
    "member": "omni.member.v1.MemberService",
    "distribution": "omni.distribution.v1.DistributionService",
    "gateway": "omni.gateway.v1.GatewayService",
}


def runner_env(test_stack, tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {name: free_port() for name in SERVICES}
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}:{REPO / 'gen'}",
        "OMNI_STATE_DIR": str(tmp_path / "state"),
        "OMNI_BROKER_PORT": str(free_port()),
        "OMNI_GATEWAY_HTTP_PORT": str(free_port()),
        "OMNI_DATABASE_PREFIX": f"omni_t{test_stack.run_id}_run_",
        "OMNI_TOPIC_PREFIX": f"t{test_stack.run_id}.run.",
    }
    for name in SERVICES:
        env[f"OMNI_{name.upper()}_GRPC_PORT"] = str(ports[name])
        env[f"OMNI_{name.upper()}_METRICS_PORT"] = str(free_port())
        env[f"OMNI_{name.upper()}_ADDR"] = f"127.0.0.1:{ports[name]}"
    # An external server for the suite means an external server for the runner too;
    # otherwise the runner embeds its own, as `make run` does on a fresh machine.
    if not os.environ.get("OMNI_PG_DSN"):
        env.pop("OMNI_PG_DSN", None)
    if not os.environ.get("OMNI_KAFKA_BOOTSTRAP"):
        env.pop("OMNI_KAFKA_BOOTSTRAP", None)
    return env, ports


def start_runner(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "libs.runner"], cwd=REPO, env=env, stdout=log, stderr=log
        )


async def test_runner_starts_the_platform_and_stops_everything(test_stack, tmp_path):
    env, ports = runner_env(test_stack, tmp_path)
    log_path = tmp_path / "runner.log"
    runner = start_runner(env, log_path)
    try:
        deadline = time.monotonic() + 180
        while "Omni is running" not in log_path.read_text():
            assert runner.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.5)
        children = psutil.Process(runner.pid).children(recursive=True)
        assert len(children) >= len(SERVICES)

        for name, port in ports.items():
            address = f"127.0.0.1:{port}"
            assert await health_status(address) == health_pb2.HealthCheckResponse.SERVING
            assert await health_status(address, GRPC_NAMES[name]) == (
                health_pb2.HealthCheckResponse.SERVING
            )
            with grpc.insecure_channel(address) as channel:
                services = ProtoReflectionDescriptorDatabase(channel).get_services()
            assert GRPC_NAMES[name] in services
            assert "grpc.health.v1.Health" in services

        output = log_path.read_text()
        for name, port in ports.items():
            assert f"127.0.0.1:{port}" in output, f"{name} endpoint not printed"
        assert env["OMNI_GATEWAY_HTTP_PORT"] in output
        assert "/metrics" in output

        # The demo data went through catalog's outbox to inventory's consumer.
        async def demo_sku_tracked() -> str:
            return await asyncio.to_thread(
                call,
                f"127.0.0.1:{ports['inventory']}",
                "omni.inventory.v1.InventoryService/GetTrackedSku",
                '{"sku_code": "DEMO-TEE-RED-M"}',
            )

        assert "DEMO-TEE" in await eventually(demo_sku_tracked, timeout=30)

        runner.send_signal(signal.SIGTERM)
        assert runner.wait(60) == 0
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if os.environ.get("OMNI_PG_DSN"):
            for name in SERVICES:
                url = Settings.from_env(name, env).database_url()
                await drop_database(url)
