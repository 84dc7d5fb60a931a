"""Dashboards and alerts against a real Prometheus scraping the running platform: traffic
through every service, then every query of every dashboard returns data, every alert rule
is loaded, healthy and evaluates, and a stopped service fires an alert that resolves."""

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
from tests.e2e.sre.traffic import Traffic
from tests.integration.gateway.conftest import Platform as Shop

OUTPUT = Path(__file__).resolve().parents[3] / "test-output" / "sre"
DASHBOARDS = {
    "Omni / Platform overview",
    "Omni / Orders and routing",
    "Omni / Inventory",
    "Omni / Events and queues",
    "Omni / Gateway and channels",
    "Omni / Members and distribution",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def prometheus(platform: Platform, tmp_path_factory) -> AsyncIterator[Prometheus]:
    server = Prometheus(platform, tmp_path_factory.mktemp("prometheus"))
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


def alert_names() -> set[str]:
    """Every alert the repository's rule files declare."""
    return {
        name
        for path in Path(RULES_DIR).glob("*.yml")
        for name in re.findall(r"^\s*- alert:\s*(\S+)", path.read_text(), re.M)
    }


def test_every_alert_rule_passes_promtool() -> None:
    files = sorted(str(p) for p in Path(RULES_DIR).glob("*.yml"))
    assert files
    result = subprocess.run(
        ["promtool", "check", "rules", *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def platform_traffic(platform: Platform, unique: str) -> None:
    """Refused catalog calls, and one poison record that catalog's consumers park in their
    dead-letter topics."""
    async with grpc.aio.insecure_channel(platform.address("catalog")) as channel:
        stub = cat_grpc.CatalogServiceStub(channel)
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


async def test_every_dashboard_query_returns_data_under_traffic(
    platform: Platform, shop: Shop, prometheus: Prometheus, test_stack, unique: str
) -> None:
    queries = dashboard_queries()
    assert {q[0] for q in queries} == DASHBOARDS
    traffic = Traffic(shop, test_stack, unique)
    try:
        await traffic.run()
    finally:
        await traffic.close()
    await platform_traffic(platform, unique)

    async def all_return_data() -> None:
        empty = [f"{d} / {p}: {e}" for d, p, e in queries if not await prometheus.query(e)]
        assert not empty, f"{len(empty)} of {len(queries)} queries have no data:\n" + "\n".join(
            empty
        )

    await eventually(all_return_data, timeout=60, interval=2)


async def test_every_alert_rule_is_loaded_healthy_and_evaluates(prometheus: Prometheus) -> None:
    expected = alert_names()
    assert len(expected) >= 9

    async def loaded_and_healthy() -> dict[str, dict]:
        rules = {r["name"]: r for r in await prometheus.rules() if r["type"] == "alerting"}
        assert set(rules) == expected
        unhealthy = {
            name: (rule["health"], rule.get("lastError"))
            for name, rule in rules.items()
            if rule["health"] != "ok"
        }
        assert not unhealthy, unhealthy
        return rules

    rules = await eventually(loaded_and_healthy, timeout=30, interval=1)
    for name, rule in rules.items():
        # Prometheus answers "success" for a valid query; an alert that is not firing has no
        # series, and that is fine.
        assert isinstance(await prometheus.query(rule["query"]), list), name


async def test_a_stopped_service_fires_service_down_and_it_resolves(
    platform: Platform, prometheus: Prometheus
) -> None:
    async def firing() -> bool:
        return any(
            a["labels"].get("alertname") == "OmniServiceDown"
            and a["labels"].get("job") == "omni-member"
            and a["state"] == "firing"
            for a in await prometheus.alerts()
        )

    async def scraped() -> None:
        assert await prometheus.query('up{job="omni-member"} == 1')

    await eventually(scraped, timeout=30, interval=1)
    assert not await firing()
    platform.stop("member")

    async def fires() -> None:
        assert await firing()

    await eventually(fires, timeout=60, interval=1)
    await platform.start(("member",))

    async def resolves() -> None:
        assert not await firing()

    await eventually(resolves, timeout=60, interval=1)


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


async def test_the_status_page_shows_all_six_services_in_a_browser(
    platform: Platform, tmp_path: Path
) -> None:
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
