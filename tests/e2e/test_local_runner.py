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


def read(path: Path) -> str:
    return path.read_text()


async def wait_running(runner: subprocess.Popen[bytes], log_path: Path) -> list[psutil.Process]:
    deadline = time.monotonic() + 180
    while "Omni is running" not in (output := read(log_path)):
        assert runner.poll() is None, output
        assert time.monotonic() < deadline, output
        await asyncio.sleep(0.5)
    children: list[psutil.Process] = psutil.Process(runner.pid).children(recursive=True)
    assert len(children) >= len(SERVICES)
    return children


def assert_all_gone(children: list[psutil.Process]) -> None:
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child


async def test_runner_starts_the_platform_keeps_its_data_and_stops_everything(test_stack, tmp_path):
    env, ports = runner_env(test_stack, tmp_path)
    catalog = f"127.0.0.1:{ports['catalog']}"
    runner = start_runner(env, tmp_path / "first.log")
    try:
        children = await wait_running(runner, tmp_path / "first.log")
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

        output = (tmp_path / "first.log").read_text()
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

        # The first command `make run` suggests: a signed web-mall order through the gateway,
        # routed to the nearest store with stock (Nanjing West Road, for a Jing'an address).
        demo = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.demo_order"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "mall/orders → 201" in demo.stdout, demo.stdout
        assert '"location_id": "DEMO-STORE-JINGAN"' in demo.stdout, demo.stdout
        await asyncio.to_thread(
            call,
            catalog,
            "omni.catalog.v1.CatalogService/CreateSku",
            '{"request_id": "kept-1", "sku_code": "KEPT-SKU-1", "style_code": "KEPT", '
            '"name": "Survives a restart"}',
        )

        runner.send_signal(signal.SIGTERM)
        assert runner.wait(60) == 0
        assert_all_gone(children)

        # Started again on the same state: what was written is still there; Ctrl-C stops it.
        runner = start_runner(env, tmp_path / "second.log")
        children = await wait_running(runner, tmp_path / "second.log")
        kept = await asyncio.to_thread(
            call, catalog, "omni.catalog.v1.CatalogService/GetSku", '{"sku_code": "KEPT-SKU-1"}'
        )
        assert "Survives a restart" in kept
        runner.send_signal(signal.SIGINT)
        assert runner.wait(60) == 0
        assert_all_gone(children)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if os.environ.get("OMNI_PG_DSN"):
            for name in SERVICES:
                url = Settings.from_env(name, env).database_url()
                await drop_database(url)


async def test_ctrl_c_while_starting_stops_at_once_and_leaves_nothing(test_stack, tmp_path):
    env, _ = runner_env(test_stack, tmp_path)
    log_path = tmp_path / "runner.log"
    runner = start_runner(env, log_path)
    try:
        deadline = time.monotonic() + 120
        while "started 6 services" not in log_path.read_text():
            assert runner.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.1)
        children = psutil.Process(runner.pid).children(recursive=True)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(60) == 130, log_path.read_text()
        assert "interrupted while starting" in log_path.read_text()
        assert_all_gone(children)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if os.environ.get("OMNI_PG_DSN"):
            for name in SERVICES:
                await drop_database(Settings.from_env(name, env).database_url())
