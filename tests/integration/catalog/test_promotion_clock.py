"""Promotion started/ended events leave once each, at their edges, with two replicas running."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import events_pb2

from libs.testing.services import eventually, running_service
from services.catalog.service_layer.promotion_clock import emit_due_events
from tests.integration.catalog.helpers import cny, make_channel, make_sku, rid, ts


async def declare(catalog, promotion_id: str, channel: str, sku: str, start, end) -> None:
    await catalog.stub.DeclarePromotion(
        cat.DeclarePromotionRequest(
            request_id=rid(),
            promotion=c.Promotion(
                promotion_id=promotion_id,
                name="Flash sale",
                channel_ids=[channel],
                items=[c.PromotionItem(sku_code=sku, price=cny(100))],
                start_time=ts(start),
                end_time=ts(end),
            ),
        ),
        timeout=5,
    )


async def test_two_replicas_emit_started_and_ended_once(catalog, test_stack, unique):
    channel, sku = f"CL{unique}", f"CL{unique}"
    await make_channel(catalog.stub, channel, c.CHANNEL_KIND_ONLINE)
    await make_sku(catalog.stub, sku, sku, list_price=1000)
    now = datetime.now(UTC)
    await declare(
        catalog,
        f"LIVE{unique}",
        channel,
        sku,
        now - timedelta(seconds=1),
        now + timedelta(seconds=2),
    )
    await declare(
        catalog, f"LATER{unique}", channel, sku, now + timedelta(days=1), now + timedelta(days=2)
    )

    # a second replica beside the module's one: both run the clock every second
    async with running_service(test_stack.settings("catalog")):

        async def ended() -> None:
            assert len(await catalog.events(events_pb2.PromotionEndedEvent, f"LIVE{unique}")) == 1

        await eventually(ended, timeout=30)
        # a few more ticks of both replicas must not repeat anything
        await asyncio.sleep(2.1)

    [started] = await catalog.events(events_pb2.PromotionStartedEvent, f"LIVE{unique}")
    [end] = await catalog.events(events_pb2.PromotionEndedEvent, f"LIVE{unique}")
    assert started.promotion.items[0].price == cny(100)
    assert end.promotion.channel_ids == [channel]
    assert await catalog.events(events_pb2.PromotionStartedEvent, f"LATER{unique}") == []


async def test_concurrent_ticks_claim_each_edge_once(catalog, unique):
    channel = f"CT{unique}"
    await make_channel(catalog.stub, channel, c.CHANNEL_KIND_ONLINE)
    past = datetime.now(UTC) - timedelta(days=10)
    for i in range(6):
        sku = f"CT{unique}-{i}"
        await make_sku(catalog.stub, sku, f"CT{unique}", list_price=1000)
        await declare(catalog, f"CT{unique}-{i}", channel, sku, past, past + timedelta(days=1))
    factory = catalog.process.runtime.uow_factory
    await asyncio.gather(*(emit_due_events(factory) for _ in range(4)))

    # The module's own clock ticks too: a row it holds is skipped by these ticks (SKIP LOCKED)
    # and its end edge leaves on its next pass. Each edge exactly once, then; a duplicate
    # would never go away.
    async def every_edge_once() -> None:
        for i in range(6):
            key = f"CT{unique}-{i}"
            assert len(await catalog.events(events_pb2.PromotionStartedEvent, key)) == 1
            assert len(await catalog.events(events_pb2.PromotionEndedEvent, key)) == 1

    await eventually(every_edge_once, timeout=15)
    await asyncio.sleep(1.5)  # further ticks of the clock must not repeat anything
    await every_edge_once()
