"""The whole platform as six real processes, plus a real Prometheus scraping it."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libs.config import SERVICES
from libs.local_stack import free_port
from libs.testing.plugin import TestStack
from libs.testing.services import ServiceSubprocess

REPO = Path(__file__).resolve().parents[3]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "deploy" / "grafana" / "dashboards"
# Alerts wait minutes in production; the test keeps the same expressions and shortens `for`.
TEST_FOR = "2s"
# Background loops tick fast so pushes and expiries happen within a test's patience.
FAST_LOOPS = {
    "OMNI_GATEWAY_PUSH_POLL_SECONDS": "0.05",
    "OMNI_GATEWAY_PUSH_BACKOFF_SECONDS": "0.05",
    "OMNI_INVENTORY_SWEEP_INTERVAL_SECONDS": "0.2",
}


@dataclass
class Platform:
    stack: TestStack
    workdir: Path
    trace_file: Path
    grpc_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    http_port: int = 0
    processes: dict[str, ServiceSubprocess] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {**self.stack.env(), "OMNI_TRACE_FILE": str(self.trace_file), **FAST_LOOPS}
        env["OMNI_GATEWAY_HTTP_PORT"] = str(self.http_port)
        for name in SERVICES:
            upper = name.upper()
            env[f"OMNI_{upper}_GRPC_PORT"] = str(self.grpc_ports[name])
            env[f"OMNI_{upper}_ADDR"] = f"127.0.0.1:{self.grpc_ports[name]}"
            env[f"OMNI_{upper}_METRICS_PORT"] = str(self.metrics_ports[name])
            env[f"OMNI_{upper}_METRICS_ADDR"] = f"127.0.0.1:{self.metrics_ports[name]}"
        return env

    @classmethod
    def allocate(cls, stack: TestStack, workdir: Path) -> Platform:
        platform = cls(stack, workdir, workdir / "spans.jsonl")
        platform.grpc_ports = {name: free_port() for name in SERVICES}
        platform.metrics_ports = {name: free_port() for name in SERVICES}
        platform.http_port = free_port()
        return platform

    async def start(self, names: tuple[str, ...] = SERVICES) -> None:
        for name in names:
            self.processes[name] = ServiceSubprocess(
                name, self.env(), self.workdir / "logs" / f"{name}.log"
            )
        for name in names:
            await self.processes[name].wait_serving(timeout=90)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_ports[name]}"

    def spans(self) -> list[dict[str, Any]]:
        """Every span the services have exported so far (JSON lines, libs/telemetry.py)."""
        if not self.trace_file.exists():
            return []
        lines = self.trace_file.read_text().splitlines()
        # The last line may be half-written by a process flushing right now.
        return [json.loads(line) for line in lines if line.endswith("}")]


class Prometheus:
    """A real Prometheus (Debian package) with the repo's alert rules, scraping every second."""

    def __init__(self, platform: Platform, workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed; `make test` installs it")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = workdir / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        for source in RULES_DIR.glob("*.yml"):
            text = re.sub(r"(\n\s+for:\s*)\S+", rf"\g<1>{TEST_FOR}", source.read_text())
            (rules / source.name).write_text(text)
        scrape = [
            {
                "job_name": f"omni-{name}",
                "static_configs": [{"targets": [f"127.0.0.1:{platform.metrics_ports[name]}"]}],
            }
            for name in SERVICES
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules / "*.yml")],
            "scrape_configs": scrape,
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.to_thread(_get, f"{self.url}/-/ready")
                return
            except OSError:
                await asyncio.sleep(0.3)
        raise TimeoutError("prometheus not ready")

    async def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(await asyncio.to_thread(_get, url))
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        body = json.loads(await asyncio.to_thread(_get, f"{self.url}/api/v1/alerts"))
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    async def rules(self) -> list[dict[str, Any]]:
        body = json.loads(await asyncio.to_thread(_get, f"{self.url}/api/v1/rules"))
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, expr) for every target of every provisioned dashboard."""
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$service", ".*")
                found.append((dashboard["title"], panel["title"], expr))
    return found
