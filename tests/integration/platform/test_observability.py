"""Traces follow a SKU from catalog's RPC through the outbox relay and Kafka into inventory's
consumer; metrics and JSON logs are really exposed."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.config import Settings
from libs.db import drop_database
from libs.local_stack import free_port
from libs.testing.services import ServiceSubprocess, eventually


def spans(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_one_trace_spans_the_rpc_the_relay_kafka_and_the_consumer(
    test_stack, unique, tmp_path
):
    trace_file = tmp_path / "spans.jsonl"
    metrics = {"catalog": free_port(), "inventory": free_port()}
    # Its own databases and topics: the session's catalog topic carries every other test's
    # events, which a fresh consumer would have to work through first.
    world = f"obs{unique.lower()}"
    env = {
        **test_stack.env(),
        "OMNI_TRACE_FILE": str(trace_file),
        # Both off by default (libs/telemetry.py): SQL spans and a log line per call.
        "OMNI_TRACE_SQL": "true",
        "OMNI_LOG_LEVEL": "DEBUG",
        "OMNI_DATABASE_PREFIX": f"omni_t{test_stack.run_id}_{world}_",
        "OMNI_TOPIC_PREFIX": f"t{test_stack.run_id}.{world}.",
    }
    catalog = ServiceSubprocess(
        "catalog",
        {**env, "OMNI_CATALOG_METRICS_PORT": str(metrics["catalog"])},
        tmp_path / "catalog.log",
    )
    inventory = ServiceSubprocess(
        "inventory",
        {**env, "OMNI_INVENTORY_METRICS_PORT": str(metrics["inventory"])},
        tmp_path / "inventory.log",
    )
    try:
        await catalog.wait_serving()
        await inventory.wait_serving()
        sku_code = f"TRACE-{unique}"
        async with grpc.aio.insecure_channel(catalog.address) as channel:
            await cat_grpc.CatalogServiceStub(channel).CreateSku(
                cat.CreateSkuRequest(
                    request_id=f"trace-{unique}", sku_code=sku_code, style_code="T", name="Traced"
                ),
                timeout=10,
            )
        async with grpc.aio.insecure_channel(inventory.address) as channel:
            stub = inv_grpc.InventoryServiceStub(channel)
            await eventually(
                lambda: stub.GetTrackedSku(inv.GetTrackedSkuRequest(sku_code=sku_code), timeout=5)
            )

        def one_trace() -> dict[str, list[dict[str, object]]]:
            found = spans(trace_file)
            create = [s for s in found if s["kind"] == "SERVER" and "CreateSku" in str(s["name"])]
            assert create, "no CreateSku server span yet"
            trace_id = create[-1]["trace_id"]
            in_trace = [s for s in found if s["trace_id"] == trace_id]
            by_kind: dict[str, list[dict[str, object]]] = {}
            for span in in_trace:
                by_kind.setdefault(f"{span['service']}:{span['kind']}", []).append(span)
            assert "omni-catalog:PRODUCER" in by_kind, sorted(by_kind)
            assert "omni-inventory:CONSUMER" in by_kind, sorted(by_kind)
            return by_kind

        async def probe() -> dict[str, list[dict[str, object]]]:
            return one_trace()

        by_kind = await eventually(probe, timeout=20, interval=0.3)
        producer = by_kind["omni-catalog:PRODUCER"][0]
        consumer = by_kind["omni-inventory:CONSUMER"][0]
        assert consumer["parent_span_id"] == producer["span_id"]
        # The consumer's SQL (asyncpg client spans) belongs to the same trace.
        assert "omni-inventory:CLIENT" in by_kind

        catalog_metrics = scrape(metrics["catalog"])
        assert (
            'omni_grpc_server_handled_total{code="OK",method="/omni.catalog.v1.CatalogService/'
            'CreateSku",service="catalog"}'
        ) in catalog_metrics
        assert "omni_grpc_server_handling_seconds_bucket" in catalog_metrics
        assert 'omni_outbox_published_total{service="catalog"' in catalog_metrics
        assert 'omni_outbox_backlog_events{service="catalog"}' in catalog_metrics
        inventory_metrics = scrape(metrics["inventory"])
        assert "omni_consumer_events_total{" in inventory_metrics
        assert 'outcome="applied"' in inventory_metrics
        assert "omni_consumer_lag_messages{" in inventory_metrics

        log_lines = [
            json.loads(line)
            for line in (tmp_path / "catalog.log").read_text().splitlines()
            if line.startswith("{")
        ]
        rpc_lines = [line for line in log_lines if line.get("rpc", "").endswith("/CreateSku")]
        assert rpc_lines and rpc_lines[-1]["trace_id"] == producer["trace_id"]
    finally:
        for service in (catalog, inventory):
            service.terminate()
        for service in (catalog, inventory):
            service.wait()
        for name in ("catalog", "inventory"):
            await drop_database(Settings.from_env(name, env).database_url())
