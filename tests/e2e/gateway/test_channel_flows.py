"""Channel flows end to end through the gateway's HTTP API, with every service running as
its own process: the order service captures, routes and holds stock at inventory; what the
channels see comes back through the gateway. Assertions read the platform's own answers
(order service) to prove the effect, never a shortcut into a database."""

from __future__ import annotations

import time

from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc
from omni.order.v1 import order_pb2 as ord_pb
from omni.order.v1 import order_service_pb2 as ord_svc

from libs.testing.services import eventually
from tests.integration.gateway.conftest import Platform, rid

NEAR = {"latitude": 31.2305, "longitude": 121.4738}


async def routed(world: Platform, order_id: str) -> ord_svc.GetOrderResponse:
    async def probe() -> ord_svc.GetOrderResponse:
        got = await world.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
        assert got.fulfilment_orders, ord_pb.OrderStatus.Name(got.order.status)
        return got

    return await eventually(probe, timeout=30)


async def sku_in(world: Platform, code: str, stores: dict[str, int]) -> str:
    await world.sku(code)
    await world.tracked(code)
    for store, quantity in stores.items():
        await world.receive(store, code, quantity)
    return code


async def map_skus(world: Platform, channel_id: str, pairs: dict[str, str]) -> None:
    await world.catalog.MapChannelSkus(
        cat_svc.MapChannelSkusRequest(
            request_id=rid(),
            channel_id=channel_id,
            mappings=[
                cat.ChannelSkuMapping(channel_id=channel_id, sku_code=sku, external_sku_id=ext)
                for ext, sku in pairs.items()
            ],
        )
    )


def tmall_trade(tid: str, sku_id: str, yuan: str = "99.00") -> dict:
    return {
        "tid": tid,
        "receiver_state": "Shanghai",
        "receiver_city": "Shanghai",
        "receiver_address": "1 Huaihai Rd",
        "payment": yuan,
        "orders": [
            {"oid": f"{tid}1", "num_iid": "6400", "sku_id": sku_id, "num": 1, "price": yuan}
        ],
    }


async def test_marketplace_order_retried_five_times_exists_once(
    world: Platform, unique: str
) -> None:
    ch = f"TM-{unique}"
    key = await world.channel(ch, "tmall")
    store = f"ST-{unique}"
    await world.location(store, [ch])
    sku = await sku_in(world, f"E2E-{unique}-A", {store: 5})
    await map_skus(world, ch, {f"9{unique}": sku})
    answers = [
        await world.post_marketplace(
            "tmall", key, f"/v1/channels/{ch}/tmall/trades", tmall_trade(f"T{unique}", f"9{unique}")
        )
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200], answers[0].text
    listed = await world.order.ListOrders(ord_svc.ListOrdersRequest(channel_id=ch))
    assert len(listed.orders) == 1
    assert listed.orders[0].order_id == answers[0].json()["order_id"]
    assert listed.orders[0].channel_order_id == f"T{unique}"


async def test_online_first_local_life_paid_online_consumed_in_store(
    world: Platform, unique: str
) -> None:
    ch = f"LL-{unique}"
    key = await world.channel(ch, "local_life")
    store = f"ST-{unique}"
    await world.location(store, [ch])
    sku = await sku_in(world, f"E2E-{unique}-B", {store: 3})
    voucher = {
        "voucher_order_id": f"V{unique}",
        "deal_id": "DEAL-1",
        "store_id": store,
        "user_phone": "13800001234",
        "items": [{"sku_code": sku, "quantity": 1, "price": 6900}],
        "paid_amount": 6900,
    }
    paid = await world.post(key, f"/v1/channels/{ch}/local-life/vouchers", voucher)
    assert paid.status_code == 201, paid.text
    order_id = paid.json()["order_id"]
    got = await routed(world, order_id)
    assert got.order.fulfilment_mode == ord_pb.FULFILMENT_MODE_STORE_PICKUP
    redeem = {"voucher_order_id": f"V{unique}", "voucher_code": "884422", "store_id": store}

    async def consumed() -> None:
        response = await world.post(key, f"/v1/channels/{ch}/local-life/redemptions", redeem)
        assert response.status_code == 200, response.text

    await eventually(consumed, timeout=30)
    done = await world.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
    assert done.order.status == ord_pb.ORDER_STATUS_COMPLETED


async def test_online_offline_online_same_city_delivery_from_a_nearby_store(
    world: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await world.channel(ch, "web_mall")
    store = f"ST-{unique}"
    await world.location(store, [ch])
    sku = await sku_in(world, f"E2E-{unique}-C", {store: 4})
    order = {
        "order_no": f"W{unique}",
        "member_id": f"m-{unique}",
        "fulfilment": "same_city",
        "delivery_address": {
            "province": "Shanghai",
            "city": "Shanghai",
            "street": "2 Nanjing Rd",
            **NEAR,
        },
        "items": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
        "total": 9900,
    }
    response = await world.post(key, f"/v1/channels/{ch}/mall/orders", order)
    assert response.status_code == 201, response.text
    got = await routed(world, response.json()["order_id"])
    assert got.order.fulfilment_mode == ord_pb.FULFILMENT_MODE_SAME_CITY_DELIVERY
    assert [f.location_id for f in got.fulfilment_orders] == [store]


async def test_offline_online_offline_marketplaces_and_mall_dispatched_to_the_right_stores(
    world: Platform, unique: str
) -> None:
    tm, jd, mall = f"TM-{unique}", f"JD-{unique}", f"MALL-{unique}"
    tm_key = await world.channel(tm, "tmall")
    jd_key = await world.channel(jd, "jd")
    mall_key = await world.channel(mall, "web_mall")
    store_a, store_b = f"SA-{unique}", f"SB-{unique}"
    await world.location(store_a, [tm, jd, mall])
    await world.location(store_b, [tm, jd, mall])
    only_a = await sku_in(world, f"E2E-{unique}-DA", {store_a: 5})
    only_b = await sku_in(world, f"E2E-{unique}-DB", {store_b: 5})
    await map_skus(world, tm, {f"7{unique}": only_a})
    await map_skus(world, jd, {f"8{unique}": only_b})
    tm_answer = await world.post_marketplace(
        "tmall", tm_key, f"/v1/channels/{tm}/tmall/trades", tmall_trade(f"T{unique}", f"7{unique}")
    )
    jd_body = {
        "orderId": int(time.time() * 1000),
        "orderPayment": "99.00",
        "consigneeInfo": {"province": "Shanghai", "city": "Shanghai", "fullAddress": "3 Yan'an Rd"},
        "itemInfoList": [{"skuId": f"8{unique}", "itemTotal": 1, "jdPrice": "99.00"}],
    }
    jd_answer = await world.post_marketplace("jd", jd_key, f"/v1/channels/{jd}/jd/orders", jd_body)
    mall_body = {
        "order_no": f"W{unique}",
        "member_id": f"m-{unique}",
        "fulfilment": "express",
        "delivery_address": {"province": "Shanghai", "city": "Shanghai", "street": "4 Xizang Rd"},
        "items": [{"sku_code": only_b, "quantity": 2, "unit_price": 9900}],
        "total": 19800,
    }
    mall_answer = await world.post(mall_key, f"/v1/channels/{mall}/mall/orders", mall_body)
    for answer in (tm_answer, jd_answer, mall_answer):
        assert answer.status_code == 201, answer.text
    placed = {
        name: [f.location_id for f in (await routed(world, a.json()["order_id"])).fulfilment_orders]
        for name, a in (("tmall", tm_answer), ("jd", jd_answer), ("mall", mall_answer))
    }
    assert placed == {"tmall": [store_a], "jd": [store_b], "mall": [store_b]}


async def test_endless_aisle_sale_fulfilled_from_another_store(
    world: Platform, unique: str
) -> None:
    ch = f"POS-{unique}"
    key = await world.channel(ch, "pos")
    selling, holding = f"SS-{unique}", f"SH-{unique}"
    await world.location(selling, [ch])
    await world.location(holding, [ch])
    sku = await sku_in(world, f"E2E-{unique}-E", {holding: 2})
    sale = {
        "sale_id": f"EA{unique}",
        "store_id": selling,
        "staff_id": f"G-{unique}",
        "member_id": f"m-{unique}",
        "handover": "delivery",
        "delivery_address": {
            "province": "Shanghai",
            "city": "Shanghai",
            "street": "5 Fuxing Rd",
            **NEAR,
        },
        "lines": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
        "total": 9900,
    }
    response = await world.post(key, f"/v1/channels/{ch}/pos/endless-aisle-orders", sale)
    assert response.status_code == 201, response.text
    got = await routed(world, response.json()["order_id"])
    assert got.order.fulfilment_mode == ord_pb.FULFILMENT_MODE_ENDLESS_AISLE
    assert got.order.selling_store_id == selling
    assert [f.location_id for f in got.fulfilment_orders] == [holding]


async def test_return_at_another_store(world: Platform, unique: str) -> None:
    ch = f"POS-{unique}"
    key = await world.channel(ch, "pos")
    store_a, store_b = f"RA-{unique}", f"RB-{unique}"
    await world.location(store_a, [ch])
    await world.location(store_b, [ch])
    sku = await sku_in(world, f"E2E-{unique}-F", {store_a: 3})
    sale = {
        "sale_id": f"S{unique}",
        "store_id": store_a,
        "staff_id": "G1",
        "member_id": f"m-{unique}",
        "lines": [{"sku_code": sku, "quantity": 2, "unit_price": 9900}],
        "total": 19800,
    }
    sold = await world.post(key, f"/v1/channels/{ch}/pos/sales", sale)
    assert sold.status_code == 201, sold.text
    order_id = sold.json()["order_id"]
    ret = {
        "return_id": f"R{unique}",
        "store_id": store_b,
        "order_id": order_id,
        "lines": [{"line_id": "1", "quantity": 1}],
    }

    async def returned() -> None:
        response = await world.post(key, f"/v1/channels/{ch}/pos/returns", ret)
        assert response.status_code == 201, response.text

    await eventually(returned, timeout=30)
    got = await world.order.GetOrder(ord_svc.GetOrderRequest(order_id=order_id))
    assert [r.receiving_location_id for r in got.returns] == [store_b]
    assert got.returns[0].refund_total.amount_minor == 9900
