"""A live status page for local runs (``GET /status``): each service's health and its key
rates and backlogs, read from the services' own health checks and /metrics endpoints, so
`make run` users can see the platform without Grafana. No build step: one HTML page that
polls ``GET /status.json``."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import grpc
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from libs.config import SERVICES, Settings

SERVER_FAULTS = {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS"}


@dataclass
class Sample:
    at: float
    rpcs: float
    faults: float
    events_applied: float


@dataclass
class PlatformStatus:
    """Polls the services; remembers the previous sample of each to turn counters into rates."""

    settings: Settings
    previous: dict[str, Sample] = field(default_factory=dict)

    async def snapshot(self) -> dict[str, Any]:
        rows = await asyncio.gather(*(self._service(name) for name in SERVICES))
        return {"generated_at": time.time(), "services": list(rows)}

    async def _service(self, name: str) -> dict[str, Any]:
        grpc_address = self.settings.peer_addresses[name]
        metrics_address = self.settings.metrics_addresses[name]
        row: dict[str, Any] = {
            "name": name,
            "grpc": grpc_address,
            "metrics": f"http://{metrics_address}/metrics",
            "health": await _health(grpc_address),
        }
        try:
            text = await asyncio.to_thread(_fetch, f"http://{metrics_address}/metrics")
        except OSError:
            row["metrics_reachable"] = False
            return row
        row["metrics_reachable"] = True
        figures = _figures(text)
        now = time.monotonic()
        sample = Sample(now, figures["rpcs"], figures["faults"], figures["events_applied"])
        before = self.previous.get(name)
        self.previous[name] = sample
        if before is not None and now > before.at:
            span = now - before.at
            row["rpc_per_s"] = max(0.0, (sample.rpcs - before.rpcs) / span)
            row["faults_per_s"] = max(0.0, (sample.faults - before.faults) / span)
            row["events_applied_per_s"] = max(
                0.0, (sample.events_applied - before.events_applied) / span
            )
        row.update(
            outbox_backlog=figures["outbox_backlog"],
            outbox_oldest_age_s=figures["outbox_oldest_age_s"],
            consumer_lag=figures["consumer_lag"],
            dead_letters=figures["dead_letters"],
        )
        return row


async def _health(address: str) -> str:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
    except grpc.aio.AioRpcError:
        return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


def _figures(exposition: str) -> dict[str, float]:
    figures = dict.fromkeys(
        (
            "rpcs",
            "faults",
            "events_applied",
            "outbox_backlog",
            "outbox_oldest_age_s",
            "consumer_lag",
            "dead_letters",
        ),
        0.0,
    )
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if sample.name == "omni_grpc_server_handled_total":
                figures["rpcs"] += value
                if labels.get("code") in SERVER_FAULTS:
                    figures["faults"] += value
            elif sample.name == "omni_consumer_events_total" and labels.get("outcome") == "applied":
                figures["events_applied"] += value
            elif sample.name == "omni_outbox_backlog_events":
                figures["outbox_backlog"] += value
            elif sample.name == "omni_outbox_oldest_age_seconds":
                figures["outbox_oldest_age_s"] = max(figures["outbox_oldest_age_s"], value)
            elif sample.name == "omni_consumer_lag_messages":
                figures["consumer_lag"] += value
            elif sample.name == "omni_consumer_dead_letters_total":
                figures["dead_letters"] += value
    return figures


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Omni status</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
 table { border-collapse: collapse; min-width: 60rem; }
 th, td { padding: .4rem .8rem; border-bottom: 1px solid #ddd; text-align: right; }
 th:first-child, td:first-child, td.health { text-align: left; }
 .SERVING { color: #0a7c2f; font-weight: 600; }
 .NOT_SERVING, .UNREACHABLE, .UNKNOWN, .SERVICE_UNKNOWN { color: #b00020; font-weight: 600; }
 small { color: #666; }
</style></head>
<body>
<h1>Omni platform status</h1>
<p><small id="updated">loading…</small></p>
<table>
 <thead><tr><th>service</th><th>health</th><th>RPC/s</th><th>faults/s</th>
 <th>events applied/s</th><th>outbox backlog</th><th>oldest unpublished</th>
 <th>consumer lag</th><th>dead letters</th><th>gRPC</th></tr></thead>
 <tbody id="rows"></tbody>
</table>
<script>
const fmt = (v, digits) => v === undefined ? "—" : Number(v).toFixed(digits);
async function refresh() {
  try {
    const response = await fetch("status.json", {cache: "no-store"});
    const status = await response.json();
    document.getElementById("rows").innerHTML = status.services.map(s => `
      <tr data-service="${s.name}">
        <td>${s.name}</td><td class="health ${s.health}">${s.health}</td>
        <td>${fmt(s.rpc_per_s, 1)}</td><td>${fmt(s.faults_per_s, 2)}</td>
        <td>${fmt(s.events_applied_per_s, 1)}</td><td>${fmt(s.outbox_backlog, 0)}</td>
        <td>${s.outbox_oldest_age_s === undefined ? "—" : fmt(s.outbox_oldest_age_s, 1) + " s"}</td>
        <td>${fmt(s.consumer_lag, 0)}</td><td>${fmt(s.dead_letters, 0)}</td>
        <td><small>${s.grpc}</small></td>
      </tr>`).join("");
    document.getElementById("updated").textContent =
      "updated " + new Date(status.generated_at * 1000).toLocaleTimeString();
  } catch (error) {
    document.getElementById("updated").textContent = "gateway unreachable: " + error;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
"""


def status_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["status"])
    status = PlatformStatus(settings)

    @router.get("/status", response_class=HTMLResponse, include_in_schema=False)
    async def status_page() -> str:
        return PAGE

    @router.get("/status.json", include_in_schema=False)
    async def status_json() -> dict[str, Any]:
        return await status.snapshot()

    return router
