"""The catalog peer as the order service needs it: does a SKU exist, and its category
(stored on the order line for member segments and sales statistics).

Kept in memory for ``ttl_seconds`` (a SKU, once created, does not disappear; its category
may move, which an order line then shows up to a TTL late): a capture looks catalog up
only for SKUs it has not seen lately, all of them in one round of concurrent calls, and
concurrent captures of the same new SKU share one lookup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

from libs.config import Settings
from libs.errors import Unavailable
from libs.grpc_client import peer_channel


class CatalogClient:
    def __init__(
        self,
        settings: Settings,
        *,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = peer_channel(settings, "catalog")
        self._stub = cat_grpc.CatalogServiceStub(self._channel)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        # sku → (category, when read); unknown SKUs are never cached (they may be created).
        self._known: dict[str, tuple[str, float]] = {}
        self._asking: dict[str, asyncio.Future[str | None]] = {}

    async def close(self) -> None:
        await self._channel.close()

    async def categories(self, sku_codes: Iterable[str]) -> dict[str, str]:
        """Category code per known SKU (empty when its style has none); unknown SKUs are
        left out."""
        now = self._clock()
        out: dict[str, str] = {}
        missing: list[str] = []
        for sku in set(sku_codes):
            known = self._known.get(sku)
            if known is not None and now - known[1] < self.ttl_seconds:
                out[sku] = known[0]
            else:
                missing.append(sku)
        if missing:
            answers = await asyncio.gather(*(self._lookup(sku) for sku in sorted(missing)))
            for sku, category in zip(sorted(missing), answers, strict=True):
                if category is not None:
                    out[sku] = category
        return out

    async def _lookup(self, sku: str) -> str | None:
        asking = self._asking.get(sku)
        if asking is None:
            asking = asyncio.ensure_future(self._get(sku))
            self._asking[sku] = asking
            asking.add_done_callback(lambda _f: self._asking.pop(sku, None))
        return await asyncio.shield(asking)

    async def _get(self, sku: str) -> str | None:
        try:
            got = await self._stub.GetSku(cat.GetSkuRequest(sku_code=sku))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}:
                return None
            raise Unavailable(f"catalog unavailable: {exc.details()}") from exc
        category = got.sku.category_code
        self._known[sku] = (category, self._clock())
        return category
