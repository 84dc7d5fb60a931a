"""What every call to a service's gRPC server goes through (libs/grpc_server.py), over the
wire: back-pressure when the server is full, the input checks, and log lines that carry the
caller's trace id even when no span is recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from omni.catalog.v1 import catalog_pb2
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from opentelemetry import trace

from libs.db import asyncpg_connect_kwargs
from libs.grpc_client import peer_channel
from libs.grpc_errors import field_violations
from libs.grpc_server import GrpcServer, start_grpc_server
from libs.json_logging import JsonFormatter
from libs.telemetry import setup_tracing
from libs.testing.services import eventually, running_service


class EchoCatalog(cat_grpc.CatalogServiceServicer):
    """Answers UpdateSku with what it was sent, and remembers it."""

    def __init__(self) -> None:
        self.received: list[cat.UpdateSkuRequest] = []

    async def UpdateSku(
        self, request: cat.UpdateSkuRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cat.UpdateSkuResponse:
        self.received.append(request)
        return cat.UpdateSkuResponse(
            sku=catalog_pb2.Sku(sku_code=request.sku_code, name=request.name)
        )


@dataclass
class Echo:
    server: GrpcServer
    servicer: EchoCatalog
    stub: cat_grpc.CatalogServiceAsyncStub


@contextlib.asynccontextmanager
async def echo_catalog(**options: Any) -> AsyncIterator[Echo]:
    """The platform's gRPC server around EchoCatalog, and a plain client of it."""
    servicer = EchoCatalog()  # type: ignore[abstract]  # the other RPCs are not called
    server = await start_grpc_server(
        service="catalog",
        service_names=["omni.catalog.v1.CatalogService"],
        register=lambda s: cat_grpc.add_CatalogServiceServicer_to_server(servicer, s),
        host="127.0.0.1",
        port=0,
        **options,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub: cat_grpc.CatalogServiceAsyncStub = cat_grpc.CatalogServiceStub(channel)
            yield Echo(server, servicer, stub)
    finally:
        await server.stop(0, 0)


class _Lines(logging.Handler):
    """The JSON lines a service would write for one logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("catalog"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextlib.contextmanager
def rpc_log_lines() -> Iterator[list[dict[str, Any]]]:
    logger = logging.getLogger("libs.grpc_server")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_full_server_refuses_the_next_call_at_once_instead_of_letting_it_time_out(
    test_stack, unique
):
    settings = test_stack.settings("catalog").with_overrides(grpc_max_concurrent_rpcs=2)
    async with running_service(settings) as catalog:
        database = asyncpg_connect_kwargs(settings.database_url())
        blocker = await asyncpg.connect(**database)
        watcher = await asyncpg.connect(**database)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as channel:
                stub = cat_grpc.CatalogServiceStub(channel)
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.execute("LOCK TABLE skus IN ACCESS EXCLUSIVE MODE")
                held = [
                    asyncio.ensure_future(
                        stub.GetSku(cat.GetSkuRequest(sku_code=f"BP-{unique}-{n}"), timeout=60)
                    )
                    for n in range(2)
                ]

                async def both_calls_wait_in_the_database() -> None:
                    waiting = await watcher.fetchval(
                        "SELECT count(*) FROM pg_locks "
                        "WHERE NOT granted AND relation = 'skus'::regclass"
                    )
                    assert waiting == 2

                await eventually(both_calls_wait_in_the_database)
                # A generous deadline: the answer must be the refusal, never the deadline.
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.GetSku(cat.GetSkuRequest(sku_code=f"BP-{unique}-x"), timeout=30)
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                await transaction.rollback()
                for call in held:
                    with pytest.raises(grpc.aio.AioRpcError) as answered:
                        await call
                    assert answered.value.code() == grpc.StatusCode.NOT_FOUND
                # The server takes calls again once calls finished.
                with pytest.raises(grpc.aio.AioRpcError) as served:
                    await stub.GetSku(cat.GetSkuRequest(sku_code=f"BP-{unique}-y"), timeout=30)
                assert served.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            await blocker.close()
            await watcher.close()


async def test_nul_strings_are_refused_by_field_whether_or_not_the_walk_is_needed():
    async with echo_catalog() as echo:
        # 0x00 bytes on the wire that are no NUL character (an empty map value's length):
        # the request is walked, found clean and served.
        clean = cat.UpdateSkuRequest(sku_code="A", name="n", attributes={"size": ""})
        assert b"\x00" in clean.SerializeToString()
        answered = await echo.stub.UpdateSku(clean, timeout=10)
        assert answered.sku.sku_code == "A"
        cases = [
            (cat.UpdateSkuRequest(sku_code="A\x00"), "sku_code"),
            (cat.UpdateSkuRequest(sku_code="A", attributes={"k": "v\x00"}), "attributes[k]"),
            (cat.UpdateSkuRequest(sku_code="A", attributes={"k\x00": "v"}), "attributes"),
        ]
        for request, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await echo.stub.UpdateSku(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in [f for f, _ in field_violations(refused.value)]
        assert [r.sku_code for r in echo.servicer.received] == ["A"]


async def test_log_lines_carry_the_callers_trace_id_though_nothing_is_recorded(test_stack):
    settings = test_stack.settings("order")
    assert not (settings.trace_file or settings.otlp_endpoint)
    setup_tracing(settings)
    async with echo_catalog() as echo:
        caller = settings.with_overrides(
            peer_addresses={"catalog": f"127.0.0.1:{echo.server.port}"}
        )
        async with peer_channel(caller, "catalog") as channel:
            stub = cat_grpc.CatalogServiceStub(channel)
            with (
                rpc_log_lines() as lines,
                trace.get_tracer(__name__).start_as_current_span("caller") as span,
            ):
                await stub.UpdateSku(cat.UpdateSkuRequest(sku_code="T"))
    assert not span.is_recording()
    (line,) = [line for line in lines if line["msg"] == "rpc"]
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert (line["level"], line["code"]) == ("DEBUG", "OK")


async def test_a_successful_call_is_logged_at_info_only_when_slow():
    for slow_rpc_seconds, level in ((0.0, "INFO"), (60.0, "DEBUG")):
        async with echo_catalog(slow_rpc_seconds=slow_rpc_seconds) as echo:
            with rpc_log_lines() as lines:
                await echo.stub.UpdateSku(cat.UpdateSkuRequest(sku_code="S"), timeout=10)
        assert [(line["level"], line["code"]) for line in lines if line["msg"] == "rpc"] == [
            (level, "OK")
        ]
