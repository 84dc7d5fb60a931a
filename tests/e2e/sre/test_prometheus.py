"""Dashboards and alerts against a real Prometheus scraping the running platform."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.config import SERVICES, Settings
from libs.testing.services import eventually
from tests.e2e.sre.harness import RULES_DIR, Platform, Prometheus, dashboard_queries

# Dashboards whose every query this test proves against live data; the business dashboards
# need traffic through every service (orders, members, commissions) and are not covered yet.
OUTPUT = Path(__file__).resolve().parents[3] / "test-output" / "sre"
PLATFORM_DASHBOARDS = {"Omni / Platform overview", "Omni / Events and queues"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(test_stack, tmp_path_factory) -> AsyncIterator[tuple[Platform, Prometheus]]:
    workdir = tmp_path_factory.mktemp("sre")
    platform = Platform.allocate(test_stack, workdir)
    await platform.start()
    prometheus = Prometheus(platform, workdir / "prometheus")
    try:
        await prometheus.wait_ready()
        yield platform, prometheus
    finally:
        prometheus.stop()
        platform.stop_all()


def test_every_alert_rule_passes_promtool():
    files = sorted(str(p) for p in Path(RULES_DIR).glob("*.yml"))
    assert files
    result = subprocess.run(
        ["promtool", "check", "rules", *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def generate_traffic(platform: Platform, unique: str) -> None:
    """SKUs through catalog's outbox to inventory's consumer, refused calls, and one poison
    event that inventory parks in its dead-letter topic."""
    async with grpc.aio.insecure_channel(platform.address("catalog")) as channel:
        stub = cat_grpc.CatalogServiceStub(channel)
        for i in range(5):
            await stub.CreateSku(
                cat.CreateSkuRequest(
                    request_id=f"sre-{unique}-{i}",
                    sku_code=f"SRE-{unique}-{i}",
                    style_code=f"SRE-{unique}",
                    name="Traffic",
                ),
                timeout=10,
            )
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetSku(cat.GetSkuRequest(sku_code=f"NONE-{unique}"), timeout=5)
    settings = Settings.from_env("catalog", platform.env())
    producer = AIOKafkaProducer(bootstrap_servers=settings.require_kafka())
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic("catalog"), b"\x00poison", key=b"sre")
    finally:
        await producer.stop()


async def test_platform_dashboards_return_data_under_traffic(running, unique):
    platform, prometheus = running
    await generate_traffic(platform, unique)
    queries = [q for q in dashboard_queries() if q[0] in PLATFORM_DASHBOARDS]
    assert {q[0] for q in queries} == PLATFORM_DASHBOARDS

    async def all_return_data() -> None:
        empty = [f"{d} / {p}: {e}" for d, p, e in queries if not await prometheus.query(e)]
        assert not empty, "no data:\n" + "\n".join(empty)

    await eventually(all_return_data, timeout=60, interval=2)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed; `make test` installs it"
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=8000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_status_page_shows_all_six_services_in_a_browser(running, tmp_path):
    platform, _ = running
    url = f"{platform.http}/status"
    dom = await asyncio.to_thread(chromium, "--dump-dom", url, profile=tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in SERVICES:
        row = re.search(rf'<tr data-service="{name}">(.*?)</tr>', dom.stdout, re.S)
        assert row, f"{name} missing from the status page"
        assert 'class="health SERVING"' in row.group(1), row.group(1)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "status-page.png"
    shot.unlink(missing_ok=True)
    taken = await asyncio.to_thread(
        chromium,
        f"--screenshot={shot}",
        "--window-size=1400,520",
        url,
        profile=tmp_path / "p2",
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 10_000


async def test_a_stopped_service_fires_service_down_and_it_resolves(running):
    platform, prometheus = running

    async def firing() -> bool:
        return any(
            a["labels"].get("alertname") == "OmniServiceDown"
            and a["labels"].get("job") == "omni-member"
            and a["state"] == "firing"
            for a in await prometheus.alerts()
        )

    assert not await firing()
    platform.stop("member")

    async def fires() -> None:
        assert await firing()

    await eventually(fires, timeout=60, interval=1)
    await platform.start(("member",))

    async def resolves() -> None:
        assert not await firing()

    await eventually(resolves, timeout=60, interval=1)
