"""Calls to peers carry a deadline even when the caller forgets one."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.db import asyncpg_connect_kwargs
from libs.grpc_client import peer_channel
from libs.testing.services import running_service


async def test_a_peer_call_without_a_timeout_still_ends_at_the_default_deadline(test_stack, unique):
    async with running_service(test_stack.settings("catalog")) as catalog:
        caller = test_stack.settings("order").with_overrides(
            peer_addresses={"catalog": f"127.0.0.1:{catalog.port}"}, rpc_deadline_seconds=0.5
        )
        blocker = await asyncpg.connect(
            **asyncpg_connect_kwargs(test_stack.settings("catalog").database_url())
        )
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE skus IN ACCESS EXCLUSIVE MODE")
                async with peer_channel(caller, "catalog") as channel:
                    stub = cat_grpc.CatalogServiceStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await stub.GetSku(cat.GetSkuRequest(sku_code=f"X-{unique}"))
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        finally:
            await blocker.close()
