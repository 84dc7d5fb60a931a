"""The catalog peer as the order service needs it: does a SKU exist, and its category
(stored on the order line for member segments and sales statistics)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.config import Settings
from libs.errors import Unavailable
from libs.grpc_client import peer_channel


class CatalogClient:
    def __init__(self, settings: Settings) -> None:
        self._channel = peer_channel(settings, "catalog")
        self._stub = cat_grpc.CatalogServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def categories(self, sku_codes: Iterable[str]) -> dict[str, str]:
        """Category code per known SKU (empty when its style has none); unknown SKUs are
        left out."""

        async def one(sku: str) -> tuple[str, str | None]:
            try:
                got = await self._stub.GetSku(cat.GetSkuRequest(sku_code=sku))
            except grpc.aio.AioRpcError as exc:
                if exc.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}:
                    return sku, None
                raise Unavailable(f"catalog unavailable: {exc.details()}") from exc
            return sku, got.sku.category_code

        answers = await asyncio.gather(*(one(sku) for sku in sorted(set(sku_codes))))
        return {sku: category for sku, category in answers if category is not None}
