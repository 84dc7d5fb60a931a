"""Connections that die under a service (database restart, failover) never surface as
INTERNAL: a call answers UNAVAILABLE (retryable) at worst, and the service recovers."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.db import asyncpg_connect_kwargs
from libs.testing.services import running_service


async def test_killed_database_connections_answer_unavailable_then_recover(test_stack, unique):
    settings = test_stack.settings("catalog")
    async with (
        running_service(settings) as catalog,
        grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as channel,
    ):
        stub = cat_grpc.CatalogServiceStub(channel)
        request = cat.GetSkuRequest(sku_code=f"GONE-{unique}")
        for _ in range(3):  # fill the pool
            with_error = await _code(stub, request)
            assert with_error == grpc.StatusCode.NOT_FOUND
        admin = await asyncpg.connect(**asyncpg_connect_kwargs(settings.database_url()))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1
        codes = [await _code(stub, request) for _ in range(15)]
        assert set(codes) <= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE}, codes
        assert codes[-1] == grpc.StatusCode.NOT_FOUND


async def _code(stub: Any, request: cat.GetSkuRequest) -> grpc.StatusCode:
    try:
        await stub.GetSku(request, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK
