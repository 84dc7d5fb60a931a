"""Calls to peers carry a deadline even when the caller forgets one, and are retried only
where a second attempt cannot apply them twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg
import grpc
import pytest
from omni.catalog.v1 import catalog_pb2
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.db import asyncpg_connect_kwargs
from libs.grpc_client import peer_channel
from libs.grpc_server import start_grpc_server
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


class FlakyCatalog(cat_grpc.CatalogServiceServicer):
    """Answers UNAVAILABLE to each method's first ``failures[method]`` calls (as a peer does
    while restarting or while its database is gone), RESOURCE_EXHAUSTED to GetSku (as a full
    server does), and counts every attempt that reached it."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = failures
        self.attempts: Counter[str] = Counter()

    async def _answer(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.attempts[method] += 1
        if self.attempts[method] <= self.failures.get(method, 0):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

    async def CreateSku(
        self, request: cat.CreateSkuRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cat.CreateSkuResponse:
        await self._answer("CreateSku", context)
        return cat.CreateSkuResponse(sku=catalog_pb2.Sku(sku_code=request.sku_code))

    async def ResolvePrice(
        self, request: cat.ResolvePriceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cat.ResolvePriceResponse:
        await self._answer("ResolvePrice", context)
        return cat.ResolvePriceResponse()

    async def GetSku(
        self, request: cat.GetSkuRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cat.GetSkuResponse:
        self.attempts["GetSku"] += 1
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "full")
        raise AssertionError("abort raises")


async def test_a_peer_channel_retries_unavailable_only_where_a_retry_cannot_apply_twice(
    test_stack,
):
    peer = FlakyCatalog({"CreateSku": 1, "ResolvePrice": 1})  # type: ignore[abstract]
    server = await start_grpc_server(
        service="catalog",
        service_names=["omni.catalog.v1.CatalogService"],
        register=lambda s: cat_grpc.add_CatalogServiceServicer_to_server(peer, s),
        host="127.0.0.1",
        port=0,
    )
    try:
        caller = test_stack.settings("order").with_overrides(
            peer_addresses={"catalog": f"127.0.0.1:{server.port}"}
        )
        async with peer_channel(caller, "catalog") as channel:
            stub = cat_grpc.CatalogServiceStub(channel)
            # Carries request_id: the peer answers a second attempt as it did the first.
            created = await stub.CreateSku(
                cat.CreateSkuRequest(request_id="r1", sku_code="A", style_code="S", name="A")
            )
            assert created.sku.sku_code == "A"
            assert peer.attempts["CreateSku"] == 2
            # Neither an idempotency key nor a standard read: the caller decides.
            with pytest.raises(grpc.aio.AioRpcError) as unavailable:
                await stub.ResolvePrice(cat.ResolvePriceRequest(sku_code="A", channel_id="c"))
            assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
            assert peer.attempts["ResolvePrice"] == 1
            # A full server is never asked again at once.
            with pytest.raises(grpc.aio.AioRpcError) as full:
                await stub.GetSku(cat.GetSkuRequest(sku_code="A"))
            assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert peer.attempts["GetSku"] == 1
    finally:
        await server.stop(0, 0)
