"""A service stopped with SIGTERM reports NOT_SERVING, then finishes the calls in flight."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import grpc
from grpc_health.v1 import health_pb2
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.db import asyncpg_connect_kwargs
from libs.testing.services import ServiceSubprocess, eventually, health_status


async def test_sigterm_drains_health_and_completes_in_flight_calls(test_stack, unique, tmp_path):
    env = {**test_stack.env(), "OMNI_SHUTDOWN_DRAIN_SECONDS": "1.5"}
    catalog = ServiceSubprocess("catalog", env, tmp_path / "catalog.log")
    try:
        await catalog.wait_serving()
        blocker = await asyncpg.connect(
            **asyncpg_connect_kwargs(test_stack.settings("catalog").database_url())
        )
        try:
            # Hold the SKU table so a CreateSku call stays in flight inside the server.
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("LOCK TABLE skus IN ACCESS EXCLUSIVE MODE")
            async with grpc.aio.insecure_channel(catalog.address) as channel:
                stub = cat_grpc.CatalogServiceStub(channel)
                in_flight = asyncio.ensure_future(
                    stub.CreateSku(
                        cat.CreateSkuRequest(
                            request_id=f"drain-{unique}",
                            sku_code=f"DRAIN-{unique}",
                            style_code="DRAIN",
                            name="In flight during shutdown",
                        ),
                        timeout=30,
                    )
                )

                async def waiting_on_lock() -> None:
                    waiting = await blocker.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted "
                        "AND relation = 'skus'::regclass"
                    )
                    assert waiting >= 1

                await eventually(waiting_on_lock, timeout=10)
                catalog.process.send_signal(signal.SIGTERM)

                async def not_serving() -> None:
                    status = await health_status(catalog.address)
                    assert status == health_pb2.HealthCheckResponse.NOT_SERVING

                await eventually(not_serving, timeout=5, interval=0.05)
                assert not in_flight.done()
                await transaction.rollback()
                response = await in_flight
            assert response.sku.sku_code == f"DRAIN-{unique}"
            assert catalog.wait(timeout=20) == 0
            stored = await blocker.fetchval(
                "SELECT count(*) FROM skus WHERE sku_code = $1", f"DRAIN-{unique}"
            )
            assert stored == 1
        finally:
            await blocker.close()
    finally:
        catalog.kill()
