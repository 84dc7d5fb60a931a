"""Outbound sync from real platform events: inventory's StockChangedEvent → the gateway's
consumer → a push to the channel's endpoint (a fake external channel on 127.0.0.1), with
retries, dead letters, coalescing and reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from prometheus_client import REGISTRY

from libs.testing.services import eventually
from services.gateway.adapters.push_repository import PushRepository
from services.gateway.adapters.tables import outbound_pushes
from services.gateway.domain.pushes import PushRequest
from tests.integration.gateway.conftest import Platform, rid


async def stocked_channel(
    p: Platform, unique: str, connector: str = "web_mall"
) -> tuple[str, str, str]:
    ch = f"MALL-{unique}"
    await p.channel(ch, connector, push=True)
    sku = f"TEE-{unique}-M"
    loc = f"LOC-{unique}"
    await p.sku(sku)
    await p.tracked(sku)
    await p.location(loc, [ch])
    return ch, sku, loc


def lag_count(channel: str) -> float:
    value = REGISTRY.get_sample_value(
        "omni_gateway_sync_lag_seconds_count", {"kind": "stock", "channel": channel}
    )
    return value or 0.0


def stock_pushes(p: Platform, ch: str, sku: str) -> list[dict]:
    return [r for r in p.fake.for_channel(ch) if r["kind"] == "stock" and r["subject"] == sku]


async def test_stock_change_reaches_the_channel_with_lag_recorded(
    platform: Platform, unique: str
) -> None:
    ch, sku, loc = await stocked_channel(platform, unique)
    before = lag_count(ch)
    await platform.receive(loc, sku, 5)

    async def pushed() -> None:
        got = stock_pushes(platform, ch, sku)
        assert got and got[-1]["data"] == {"type": "stock", "sku_code": sku, "available": 5}

    await eventually(pushed)

    async def lag_observed() -> None:
        # Observed when the pusher records the acknowledgement, just after the response.
        assert lag_count(ch) > before

    await eventually(lag_observed)


async def test_a_failing_channel_is_retried_until_it_acknowledges(
    platform: Platform, unique: str
) -> None:
    ch, sku, loc = await stocked_channel(platform, unique)
    platform.fake.fail_next[ch] = 2
    await platform.receive(loc, sku, 3)

    async def pushed() -> None:
        assert stock_pushes(platform, ch, sku)[-1]["data"]["available"] == 3

    await eventually(pushed)
    assert platform.fake.failures[ch] == 2


async def test_dead_letter_after_the_limit_then_retry(platform: Platform, unique: str) -> None:
    ch, sku, loc = await stocked_channel(platform, unique)
    platform.fake.fail_next[ch] = 1000
    await platform.receive(loc, sku, 4)

    async def dead() -> gw.Push:
        listed = await platform.gateway.ListDeadPushes(gw_svc.ListDeadPushesRequest(channel_id=ch))
        assert listed.pushes
        return listed.pushes[0]

    push = await eventually(dead)
    assert push.attempts == 3 and "HTTP 500" in push.last_error
    platform.fake.fail_next[ch] = 0
    retried = await platform.gateway.RetryPush(
        gw_svc.RetryPushRequest(request_id=rid(), push_id=push.push_id)
    )
    assert retried.push.status == gw.PUSH_STATUS_PENDING

    async def delivered() -> None:
        assert stock_pushes(platform, ch, sku)[-1]["data"]["available"] == 4

    await eventually(delivered)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await platform.gateway.RetryPush(
            gw_svc.RetryPushRequest(request_id=rid(), push_id=push.push_id)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_burst_coalesces_into_one_pending_push(platform: Platform, unique: str) -> None:
    ch = f"NOPUSH-{unique}"
    await platform.channel(ch, "web_mall")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with platform.db.session() as session, session.begin():
        for second in range(5):
            await PushRepository(session).enqueue(
                [
                    PushRequest(
                        ch,
                        "stock",
                        "SKU-X",
                        {"sku_code": "SKU-X"},
                        t0.replace(second=5 - second),
                        {},
                    )
                ]
            )
    async with platform.db.session() as session:
        rows = list(
            await session.execute(
                sa.select(outbound_pushes).where(outbound_pushes.c.channel_id == ch)
            )
        )
    assert len(rows) == 1
    assert rows[0].version == 5
    # Lag counts from the oldest change not yet seen by the channel.
    assert rows[0].event_time == t0.replace(second=1)


async def test_reconcile_repairs_a_channel_that_shows_the_wrong_stock(
    platform: Platform, unique: str
) -> None:
    ch, sku, loc = await stocked_channel(platform, unique)
    await platform.receive(loc, sku, 6)

    async def pushed() -> None:
        assert stock_pushes(platform, ch, sku)[-1]["data"]["available"] == 6

    await eventually(pushed)
    seen = len(stock_pushes(platform, ch, sku))
    result = await platform.gateway.ReconcileStock(
        gw_svc.ReconcileStockRequest(
            request_id=rid(), channel_id=ch, channel_stock=[gw.SkuStock(sku_code=sku, quantity=99)]
        )
    )
    assert [(r.sku_code, r.quantity) for r in result.repaired] == [(sku, 6)]
    assert result.matched == 0

    async def repaired() -> None:
        assert len(stock_pushes(platform, ch, sku)) > seen

    await eventually(repaired)
    agreeing = await platform.gateway.ReconcileStock(
        gw_svc.ReconcileStockRequest(
            request_id=rid(), channel_id=ch, channel_stock=[gw.SkuStock(sku_code=sku, quantity=6)]
        )
    )
    assert agreeing.matched == 1 and not agreeing.repaired


async def test_marketplace_stock_push_uses_its_sku_ids(platform: Platform, unique: str) -> None:
    from omni.catalog.v1 import catalog_pb2 as cat
    from omni.catalog.v1 import catalog_service_pb2 as cat_svc

    ch = f"TMALL-{unique}"
    await platform.channel(ch, "tmall", push=True)
    sku = f"TEE-{unique}-XL"
    loc = f"LOC-{unique}"
    await platform.sku(sku)
    await platform.tracked(sku)
    await platform.catalog.MapChannelSkus(
        cat_svc.MapChannelSkusRequest(
            request_id=rid(),
            channel_id=ch,
            mappings=[
                cat.ChannelSkuMapping(channel_id=ch, sku_code=sku, external_sku_id=f"77{unique}")
            ],
        )
    )
    await platform.location(loc, [ch])
    await platform.receive(loc, sku, 2)

    async def pushed() -> None:
        assert stock_pushes(platform, ch, sku)[-1]["data"] == {
            "sku_id": f"77{unique}",
            "quantity": 2,
            "type": 1,
        }

    await eventually(pushed)
