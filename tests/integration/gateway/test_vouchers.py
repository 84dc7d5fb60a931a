"""Local-life redemption is real or refused: the code is checked, the voucher is consumed only
once its goods were handed over in the store, and a refusal changes nothing (neither the
gateway's status nor the order service's fulfilment orders)."""

from __future__ import annotations

import asyncio

import httpx
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.order.v1 import order_pb2 as ord_pb
from omni.order.v1 import order_service_pb2 as ord_svc

from libs.testing.services import eventually
from tests.integration.gateway.conftest import Key, Platform, rid


def voucher(voucher_id: str, store: str, sku: str, code: str = "884422") -> dict:
    return {
        "voucher_order_id": voucher_id,
        "deal_id": "DEAL",
        "store_id": store,
        "voucher_code": code,
        "user_phone": "13800001234",
        "items": [{"sku_code": sku, "quantity": 1, "price": 6900}],
        "paid_amount": 6900,
    }


async def gateway_status(p: Platform, ch: str, voucher_id: str) -> str:
    got = await p.gateway.GetChannelOrder(
        gw_svc.GetChannelOrderRequest(channel_id=ch, channel_order_id=voucher_id)
    )
    return got.order.status


async def fulfilments(p: Platform, order_id: str) -> list[ord_pb.FulfilmentOrder]:
    got = await p.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
    return list(got.fulfilment_orders)


async def allocated(p: Platform, order_id: str) -> list[ord_pb.FulfilmentOrder]:
    async def probe() -> list[ord_pb.FulfilmentOrder]:
        found = await fulfilments(p, order_id)
        assert found
        return found

    return await eventually(probe, timeout=30)


async def redeem(
    p: Platform, key: Key, ch: str, voucher_id: str, store: str, code: str
) -> httpx.Response:
    return await p.post(
        key,
        f"/v1/channels/{ch}/local-life/redemptions",
        {"voucher_order_id": voucher_id, "voucher_code": code, "store_id": store},
    )


async def test_wrong_code_is_refused_and_nothing_changes(platform: Platform, unique: str) -> None:
    ch = f"LL-{unique}"
    key = await platform.channel(ch, "local_life")
    sku, store = await platform.stocked(ch, unique)
    paid = await platform.post(
        key, f"/v1/channels/{ch}/local-life/vouchers", voucher(f"V{unique}", store, sku)
    )
    assert paid.status_code == 201, paid.text
    order_id = paid.json()["order_id"]
    await allocated(platform, order_id)
    wrong = await redeem(platform, key, ch, f"V{unique}", store, "000000")
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["error"]["field_violations"][0]["field"] == "voucher_code"
    assert await gateway_status(platform, ch, f"V{unique}") == "accepted"
    assert [f.status for f in await fulfilments(platform, order_id)] == [
        ord_pb.FULFILMENT_STATUS_PENDING
    ]
    right = await redeem(platform, key, ch, f"V{unique}", store, "884422")
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "consumed"
    got = await platform.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
    assert got.order.status == ord_pb.ORDER_STATUS_COMPLETED


async def test_voucher_without_stock_is_not_consumed(platform: Platform, unique: str) -> None:
    """No fulfilment order yet (nothing to hand over): 409 with the reason, status kept."""
    ch = f"LL-{unique}"
    key = await platform.channel(ch, "local_life")
    sku, store = f"GW-{unique}-Z", f"STORE-{unique}"
    await platform.sku(sku)
    await platform.tracked(sku)
    await platform.location(store, [ch])
    paid = await platform.post(
        key, f"/v1/channels/{ch}/local-life/vouchers", voucher(f"V{unique}", store, sku)
    )
    assert paid.status_code == 201, paid.text
    refused = await redeem(platform, key, ch, f"V{unique}", store, "884422")
    assert refused.status_code == 409, refused.text
    assert "no fulfilment order yet" in refused.json()["error"]["message"]
    assert await gateway_status(platform, ch, f"V{unique}") == "accepted"


async def test_voucher_waiting_for_a_transfer_is_refused_until_the_goods_arrive(
    platform: Platform, unique: str
) -> None:
    ch = f"LL-{unique}"
    key = await platform.channel(ch, "local_life")
    sku = f"GW-{unique}-T"
    await platform.sku(sku)
    await platform.tracked(sku)
    store, depot = f"STORE-{unique}", f"DEPOT-{unique}"
    await platform.location(store, [ch], transfers=True)
    await platform.location(depot, [ch], transfers=True, latitude=31.3, longitude=121.5)
    await platform.receive(depot, sku, 5)
    paid = await platform.post(
        key, f"/v1/channels/{ch}/local-life/vouchers", voucher(f"V{unique}", store, sku)
    )
    assert paid.status_code == 201, paid.text
    order_id = paid.json()["order_id"]
    [leg] = await allocated(platform, order_id)
    assert leg.transfer_id and leg.location_id == depot
    for _ in range(2):
        refused = await redeem(platform, key, ch, f"V{unique}", store, "884422")
        assert refused.status_code == 409, refused.text
        assert "transfer" in refused.json()["error"]["message"]
    assert await gateway_status(platform, ch, f"V{unique}") == "accepted"
    assert [f.status for f in await fulfilments(platform, order_id)] == [
        ord_pb.FULFILMENT_STATUS_PENDING
    ]
    # The store's operations move the goods (set-up through the order service here).
    await platform.order.ShipFulfilment(
        ord_svc.ShipFulfilmentRequest(request_id=rid(), fulfilment_id=leg.fulfilment_id)
    )
    await platform.order.MarkReadyForPickup(
        ord_svc.MarkReadyForPickupRequest(request_id=rid(), fulfilment_id=leg.fulfilment_id)
    )
    done = await redeem(platform, key, ch, f"V{unique}", store, "884422")
    assert done.status_code == 200, done.text
    assert done.json()["duplicate"] is False
    assert [f.status for f in await fulfilments(platform, order_id)] == [
        ord_pb.FULFILMENT_STATUS_PICKED_UP
    ]


async def test_concurrent_redemptions_consume_once(platform: Platform, unique: str) -> None:
    ch = f"LL-{unique}"
    key = await platform.channel(ch, "local_life")
    sku, store = await platform.stocked(ch, unique)
    paid = await platform.post(
        key, f"/v1/channels/{ch}/local-life/vouchers", voucher(f"V{unique}", store, sku)
    )
    order_id = paid.json()["order_id"]
    await allocated(platform, order_id)
    answers = await asyncio.gather(
        *(redeem(platform, key, ch, f"V{unique}", store, "884422") for _ in range(5))
    )
    assert [a.status_code for a in answers] == [200] * 5
    firsts = [a for a in answers if a.json()["duplicate"] is False]
    assert len(firsts) == 1
    got = await platform.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
    assert got.order.status == ord_pb.ORDER_STATUS_COMPLETED
