"""Catalog benchmark: bulk import throughput and batch price resolution of a cart, both over
the wire against a catalog running as its own OS process.

Size: OMNI_BENCH_CATALOG_SKUS (default 100,000) SKUs imported in chunks of 1,000 rows on one
client stream; then OMNI_BENCH_CATALOG_CARTS (default 500) sequential ResolveCartPrices calls
of 50 lines mixing every price rule (list, regional, channel percentage, channel fixed,
promotion).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.common.v1 import money_pb2

from libs.db import Database
from libs.platform_tables import outbox
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess
from tests.bench.report import Report, latency_summary

SECTION = "catalog"
CHUNK = 1000
CART_LINES = 50


def _cny(amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount)


def _ean13(n: int) -> str:
    body = f"69{n:010d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


async def _chunks(run: str, total: int) -> AsyncIterator[cat.ImportSkusRequest]:
    for start in range(0, total, CHUNK):
        rows = []
        for n in range(start, min(start + CHUNK, total)):
            style = f"BS{run}-{n // 5}"
            rows.append(
                cat.ImportRow(
                    line_number=n + 1,
                    style_code=style,
                    style_name=f"Style {n // 5}",
                    brand_code=f"BB{run}",
                    sku_code=f"{style}-{n % 5}",
                    name=f"Bench SKU {n}",
                    barcode=_ean13(n),
                    color="black",
                    size=str(n % 5),
                    list_price=_cny(10_000 + n % 997),
                )
            )
        yield cat.ImportSkusRequest(request_id=f"bench-{run}-{start}", rows=rows)


async def _wait_for_outbox(stack: TestStack, since: float) -> float | None:
    """Seconds from ``since`` until the catalog's outbox has nothing left to publish."""
    db = Database(stack.settings("catalog").database_url(), pool_size=1, max_overflow=0)
    try:
        while time.perf_counter() - since < 600:
            async with db.session() as session:
                left = (
                    await session.execute(
                        sa.select(sa.func.count()).where(outbox.c.published_at.is_(None))
                    )
                ).scalar_one()
            if left == 0:
                return time.perf_counter() - since
            await asyncio.sleep(0.5)
        return None
    finally:
        await db.dispose()


async def run(stack: TestStack, report: Report) -> None:
    skus = int(os.environ.get("OMNI_BENCH_CATALOG_SKUS", "100000"))
    carts = int(os.environ.get("OMNI_BENCH_CATALOG_CARTS", "500"))
    run_id = uuid.uuid4().hex[:6].upper()
    server = ServiceSubprocess("catalog", stack.env(), REPO / ".omni" / "bench-catalog.log")
    try:
        await server.wait_serving()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = cat_grpc.CatalogServiceStub(channel)
            await stub.CreateBrand(
                cat.CreateBrandRequest(
                    request_id=f"bench-brand-{run_id}",
                    brand=c.Brand(brand_code=f"BB{run_id}", name="Bench brand"),
                ),
                timeout=10,
            )

            started = time.perf_counter()
            result = await stub.ImportSkus(_chunks(run_id, skus), timeout=3600)
            elapsed = time.perf_counter() - started
            assert result.created == skus and not result.rejected, result.rejected[:3]
            report.add(
                SECTION,
                f"bulk import of {skus:,} SKUs (client stream, {CHUNK:,}-row chunks)",
                f"{skus / elapsed:,.0f} SKUs/s ({elapsed:.1f} s)",
            )

            # The relay publishes the import's events in the background; wait for it so the
            # cart figures measure pricing, not pricing beside a 100k-event backlog.
            drained = await _wait_for_outbox(stack, started)
            report.add(
                SECTION,
                f"import start → all {skus:,} SkuCreatedEvents published to the broker",
                f"{drained:.1f} s" if drained is not None else "not drained within 10 min",
            )

            codes = [f"BS{run_id}-{n // 5}-{n % 5}" for n in range(CART_LINES)]
            channel_id = f"BENCH{run_id}"
            await stub.RegisterChannel(
                cat.RegisterChannelRequest(
                    request_id=f"bench-ch-{run_id}",
                    channel=c.Channel(channel_id=channel_id, kind=c.CHANNEL_KIND_ONLINE),
                ),
                timeout=10,
            )
            now = datetime.now(UTC)
            for i, code in enumerate(codes):
                rule = i % 5
                if rule == 1:
                    await stub.SetRegionalPrice(
                        cat.SetRegionalPriceRequest(
                            request_id=f"bench-rp-{run_id}-{i}",
                            regional_price=c.RegionalPrice(
                                sku_code=code, region_code="CN-31", price=_cny(9_000)
                            ),
                        ),
                        timeout=10,
                    )
                elif rule in (2, 3):
                    r = c.ChannelPriceRule(channel_id=channel_id, sku_code=code)
                    if rule == 2:
                        r.percentage_of_list_bp = 8_500
                    else:
                        r.fixed_price.CopyFrom(_cny(8_800))
                    await stub.SetChannelPriceRule(
                        cat.SetChannelPriceRuleRequest(request_id=f"bench-cr-{run_id}-{i}", rule=r),
                        timeout=10,
                    )
            start_ts, end_ts = Timestamp(), Timestamp()
            start_ts.FromDatetime(now - timedelta(hours=1))
            end_ts.FromDatetime(now + timedelta(days=1))
            await stub.DeclarePromotion(
                cat.DeclarePromotionRequest(
                    request_id=f"bench-promo-{run_id}",
                    promotion=c.Promotion(
                        promotion_id=f"BENCH{run_id}",
                        name="Bench promotion",
                        channel_ids=[channel_id],
                        items=[
                            c.PromotionItem(sku_code=code, price=_cny(5_000))
                            for i, code in enumerate(codes)
                            if i % 5 == 4
                        ],
                        start_time=start_ts,
                        end_time=end_ts,
                    ),
                ),
                timeout=10,
            )
            request = cat.ResolveCartPricesRequest(
                channel_id=channel_id,
                region_code="CN-31",
                lines=[cat.CartLine(sku_code=code) for code in codes],
            )
            for _ in range(20):  # warm-up: connections, prepared statements
                await stub.ResolveCartPrices(request, timeout=10)
            latencies = []
            for _ in range(carts):
                t0 = time.perf_counter()
                answer = await stub.ResolveCartPrices(request, timeout=10)
                latencies.append(time.perf_counter() - t0)
            assert len(answer.prices) == CART_LINES
            assert {p.source for p in answer.prices} == {
                c.PRICE_SOURCE_LIST,
                c.PRICE_SOURCE_REGIONAL,
                c.PRICE_SOURCE_CHANNEL_PERCENTAGE,
                c.PRICE_SOURCE_CHANNEL_FIXED,
                c.PRICE_SOURCE_PROMOTION,
            }
            report.add(
                SECTION,
                f"ResolveCartPrices, {CART_LINES}-line cart, all five rules, "
                f"{carts} sequential calls over the wire (catalog holding {skus:,}+ SKUs)",
                latency_summary(latencies),
            )
    finally:
        server.terminate()
        server.wait()
