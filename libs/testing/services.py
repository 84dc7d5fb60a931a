"""Start real services for tests: in this process (fast) or as separate OS processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config import Settings
from libs.local_stack import free_port
from libs.service_app import ServiceProcess
from services.registry import definition

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[ServiceProcess]:
    process = await ServiceProcess.start(definition(settings.service), settings)
    try:
        yield process
    finally:
        await process.stop(drain_seconds=0)


async def health_status(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return int(response.status)


class ServiceSubprocess:
    """A service started as its own OS process with ``python -m services.<name>``."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = int(env.get(f"OMNI_{name.upper()}_GRPC_PORT") or free_port())
        full_env = {
            **os.environ,
            **env,
            f"OMNI_{name.upper()}_GRPC_PORT": str(self.port),
            f"OMNI_{name.upper()}_METRICS_PORT": env.get(f"OMNI_{name.upper()}_METRICS_PORT", "0"),
            "PYTHONPATH": f"{REPO}:{REPO / 'gen'}",
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def wait_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                if await health_status(self.address) == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not SERVING after {timeout}s")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20, interval: float = 0.1
) -> T:
    """Call ``probe`` until it returns without raising; re-raise its last error on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await probe()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(interval)
