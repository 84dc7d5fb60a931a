"""The four O2O patterns, the five commission flows, an endless-aisle sale, a return at
another store and a marketplace order retried ten times, end to end: every service its own
process, every scenario action and every assertion through the gateway's HTTP API (the
order's status, fulfilment orders and returns; stock per store; nearby stock) — except the
commission amounts, which only distribution's admin gRPC API shows (see conftest)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc
from omni.distribution.v1 import distribution_pb2 as dist

from libs.testing.services import eventually
from tests.e2e.gateway.conftest import ROLES, Org, World, commission
from tests.integration.gateway.conftest import rid

SH_CENTRE = {"latitude": 31.2304, "longitude": 121.4737}


def address(**extra: Any) -> dict[str, Any]:
    return {"province": "Shanghai", "city": "Shanghai", "street": "2 Nanjing Rd", **extra}


async def sku_in(world: World, code: str, stores: dict[str, int], price: int = 9900) -> str:
    await world.sku(code, price=price)
    await world.tracked(code)
    for store, quantity in stores.items():
        await world.receive(store, code, quantity)
    return code


async def map_skus(world: World, channel_id: str, pairs: dict[str, str]) -> None:
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


def tmall_trade(tid: str, sku_id: str, yuan: str = "99.00") -> dict[str, Any]:
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


def mall_order(order_no: str, sku: str, member_id: str, fulfilment: str, **extra: Any) -> dict:
    body: dict[str, Any] = {
        "order_no": order_no,
        "member_id": member_id,
        "fulfilment": fulfilment,
        "items": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
        "total": 9900,
        **extra,
    }
    if fulfilment != "pickup" and "delivery_address" not in body:
        body["delivery_address"] = address(**SH_CENTRE)
    return body


def amounts(got: Any) -> dict[tuple[int, str], int]:
    return {(c.role, c.beneficiary_id): c.paid.amount_minor for c in got.commissions}


def expected(org: Org, flow: int, total: int, guide: str, selling: str, fulfilling: str) -> dict:
    who = {
        dist.COMMISSION_ROLE_OWNING_GUIDE: org.id(guide),
        dist.COMMISSION_ROLE_SELLING_STORE: org.id(selling),
        dist.COMMISSION_ROLE_FULFILLING_STORE: org.id(fulfilling),
    }
    return {(role, who[role]): commission(total, flow, role) for role in ROLES}


# --- the four O2O patterns ---------------------------------------------------------------


async def test_pattern_1_online_first_local_life_paid_online_consumed_in_store(
    world: World, unique: str
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
        "voucher_code": "884422",
        "user_phone": "13800001234",
        "items": [{"sku_code": sku, "quantity": 1, "price": 6900}],
        "paid_amount": 6900,
    }
    paid = await world.post(key, f"/v1/channels/{ch}/local-life/vouchers", voucher)
    assert paid.status_code == 201, paid.text
    routed = await world.routed(key, f"V{unique}")
    assert routed["fulfilment_mode"] == "store_pickup"
    assert [f["handover_store_id"] for f in routed["fulfilments"]] == [store]
    redeem = {"voucher_order_id": f"V{unique}", "voucher_code": "884422", "store_id": store}
    wrong = await world.post(
        key, f"/v1/channels/{ch}/local-life/redemptions", {**redeem, "voucher_code": "111111"}
    )
    assert wrong.status_code == 422
    consumed = await world.post(key, f"/v1/channels/{ch}/local-life/redemptions", redeem)
    assert consumed.status_code == 200, consumed.text
    assert consumed.json()["status"] == "consumed"
    done = await world.view(key, f"V{unique}")
    assert done["platform_status"] == "completed"
    assert [f["status"] for f in done["fulfilments"]] == ["picked_up"]
    assert (await world.stock_at(key, sku))[store] == (2, 2)


async def test_pattern_2_offline_first_store_customer_orders_online_and_the_guide_is_paid(
    world: World, unique: str
) -> None:
    """A store customer signs up with guide G1 at the till, later orders in the web mall
    (express, shipped by store S2): G1 is paid in flow 4."""
    org = await world.organisation(unique)
    pos_ch, mall = f"POS-{unique}", f"MALL-{unique}"
    pos = await world.channel(pos_ch, "pos")
    mall_key = await world.channel(mall, "web_mall")
    st1, st2 = org.id("ST1"), org.id("ST2")
    await world.location(st1, [pos_ch, mall])
    await world.location(st2, [pos_ch, mall])
    sku = await sku_in(world, f"E2E-{unique}-P2", {st2: 4})
    member = await world.sign_up(pos, st1, org.id("G1"))
    await world.members_known_to_distribution()
    placed = await world.post(
        mall_key,
        f"/v1/channels/{mall}/mall/orders",
        mall_order(f"W{unique}", sku, member, "express"),
    )
    assert placed.status_code == 201, placed.text
    routed = await world.routed(mall_key, f"W{unique}")
    [leg] = routed["fulfilments"]
    assert leg["location_id"] == st2
    await world.store_reports(pos, st2, routed["order_id"], leg["fulfilment_id"], "shipped", "SF1")
    await world.store_reports(pos, st2, routed["order_id"], leg["fulfilment_id"], "delivered")
    done = await world.until_status(mall_key, f"W{unique}", "completed")
    assert done["fulfilments"][0]["tracking"] == "SF1"
    got = await world.commissions(org, routed["order_id"])
    assert got.flow == dist.COMMISSION_FLOW_EXPRESS
    assert amounts(got) == expected(org, 4, 9900, "G1", "S1", "S2")


async def test_pattern_3_stock_found_in_a_nearby_store_delivered_same_city_from_it(
    world: World, unique: str
) -> None:
    """Browse online, find the item in a nearby store, order same-city delivery: the
    nearest store that has it delivers (not a nearer one without it, not a farther one)."""
    ch = f"MALL-{unique}"
    key = await world.channel(ch, "web_mall")
    pos_ch = f"POS-{unique}"
    pos = await world.channel(pos_ch, "pos")
    empty, near, far = f"EMPTY-{unique}", f"NEAR-{unique}", f"FAR-{unique}"
    await world.location(empty, [ch, pos_ch], latitude=31.2305, longitude=121.4738)
    await world.location(near, [ch, pos_ch], latitude=31.2350, longitude=121.4800)
    await world.location(far, [ch, pos_ch], latitude=31.3000, longitude=121.6000)
    sku = await sku_in(world, f"E2E-{unique}-C", {near: 2, far: 6})
    nearby = await world.get(
        key,
        "/open/v1/nearby-stock",
        params=[
            ("sku_codes", sku),
            ("latitude", str(SH_CENTRE["latitude"])),
            ("longitude", str(SH_CENTRE["longitude"])),
            ("capability", "same_city_delivery"),
        ],
    )
    assert nearby.status_code == 200, nearby.text
    assert [x["location_id"] for x in nearby.json()["locations"]] == [near, far]
    placed = await world.post(
        key,
        f"/v1/channels/{ch}/mall/orders",
        mall_order(f"W{unique}", sku, f"m-{unique}", "same_city"),
    )
    assert placed.status_code == 201, placed.text
    routed = await world.routed(key, f"W{unique}")
    assert routed["fulfilment_mode"] == "same_city_delivery"
    [leg] = routed["fulfilments"]
    assert (leg["location_id"], leg["handover"]) == (near, "same_city_rider")
    await world.store_reports(pos, near, routed["order_id"], leg["fulfilment_id"], "shipped", "R7")
    await world.store_reports(pos, near, routed["order_id"], leg["fulfilment_id"], "delivered")
    await world.until_status(key, f"W{unique}", "completed")
    assert (await world.stock_at(key, sku))[near] == (1, 1)


async def test_pattern_4_two_marketplaces_and_the_mall_dispatched_to_the_right_stores(
    world: World, unique: str
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
    jd_id = int(time.time() * 1000)
    jd_body = {
        "orderId": jd_id,
        "orderPayment": "99.00",
        "consigneeInfo": {"province": "Shanghai", "city": "Shanghai", "fullAddress": "3 Yan'an Rd"},
        "itemInfoList": [{"skuId": f"8{unique}", "itemTotal": 1, "jdPrice": "99.00"}],
    }
    jd_answer = await world.post_marketplace("jd", jd_key, f"/v1/channels/{jd}/jd/orders", jd_body)
    mall_body = mall_order(f"W{unique}", only_b, f"m-{unique}", "express")
    mall_answer = await world.post(mall_key, f"/v1/channels/{mall}/mall/orders", mall_body)
    for answer in (tm_answer, jd_answer, mall_answer):
        assert answer.status_code == 201, answer.text
    placed = {
        name: [f["location_id"] for f in (await world.routed(key, oid))["fulfilments"]]
        for name, key, oid in (
            ("tmall", tm_key, f"T{unique}"),
            ("jd", jd_key, str(jd_id)),
            ("mall", mall_key, f"W{unique}"),
        )
    }
    assert placed == {"tmall": [store_a], "jd": [store_b], "mall": [store_b]}


# --- the five commission flows -----------------------------------------------------------


async def test_the_five_commission_flows_pay_every_role(world: World, unique: str) -> None:
    """Member M belongs to guide G1 of store S1 (signed up at S1's till). Then:
    1. M buys at S1's till; 2. M buys at S2's till (S2 is rewarded as the selling and
    fulfilling store); 3. M orders online, G1 brings it from S1; 4. M orders online,
    express from S2; 5. M orders online, picks it up at S2. Every role's amount is the
    flow's rate of the order total."""
    org = await world.organisation(unique)
    pos_ch, mall = f"POS-{unique}", f"MALL-{unique}"
    pos = await world.channel(pos_ch, "pos")
    mall_key = await world.channel(mall, "web_mall")
    st1, st2 = org.id("ST1"), org.id("ST2")
    await world.location(st1, [pos_ch, mall])
    await world.location(st2, [pos_ch, mall])
    at_1 = await sku_in(world, f"E2E-{unique}-F1", {st1: 10})
    at_2 = await sku_in(world, f"E2E-{unique}-F2", {st2: 10})
    member = await world.sign_up(pos, st1, org.id("G1"))
    await world.members_known_to_distribution()

    async def till(sale_id: str, store: str, guide: str, sku: str) -> str:
        sale = {
            "sale_id": sale_id,
            "store_id": store,
            "staff_id": org.id(guide),
            "member_id": member,
            "lines": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
            "total": 9900,
        }
        sold = await world.post(pos, f"/v1/channels/{pos_ch}/pos/sales", sale)
        assert sold.status_code == 201, sold.text
        await world.until_status(pos, sale_id, "completed")
        return str(sold.json()["order_id"])

    async def online(order_no: str, body: dict, steps: list[tuple[str, str]]) -> str:
        placed = await world.post(mall_key, f"/v1/channels/{mall}/mall/orders", body)
        assert placed.status_code == 201, placed.text
        routed = await world.routed(mall_key, order_no)
        [leg] = routed["fulfilments"]
        for store, action in steps:
            await world.store_reports(
                pos, store, routed["order_id"], leg["fulfilment_id"], action, org.id("G1")
            )
        await world.until_status(mall_key, order_no, "completed")
        return str(routed["order_id"])

    orders = {
        1: await till(f"S1-{unique}", st1, "G1", at_1),
        2: await till(f"S2-{unique}", st2, "G2", at_2),
        3: await online(
            f"W3{unique}",
            mall_order(
                f"W3{unique}",
                at_1,
                member,
                "guide_delivery",
                guide_store_id=st1,
                guide_staff_id=org.id("G1"),
            ),
            [(st1, "shipped"), (st1, "delivered")],
        ),
        4: await online(
            f"W4{unique}",
            mall_order(f"W4{unique}", at_2, member, "express"),
            [(st2, "shipped"), (st2, "delivered")],
        ),
        5: await online(
            f"W5{unique}",
            mall_order(f"W5{unique}", at_2, member, "pickup", pickup_store_id=st2),
            [(st2, "ready_for_pickup"), (st2, "picked_up")],
        ),
    }
    stores = {1: ("S1", "S1"), 2: ("S2", "S2"), 3: ("S1", "S1"), 4: ("S1", "S2"), 5: ("S1", "S2")}
    for flow, order_id in orders.items():
        got = await world.commissions(org, order_id)
        assert got.flow == flow, (flow, got)
        selling, fulfilling = stores[flow]
        assert amounts(got) == expected(org, flow, 9900, "G1", selling, fulfilling), flow


# --- store operations --------------------------------------------------------------------


async def test_endless_aisle_sale_fulfilled_from_another_store(world: World, unique: str) -> None:
    ch = f"POS-{unique}"
    key = await world.channel(ch, "pos")
    selling, holding = f"SS-{unique}", f"SH-{unique}"
    await world.location(selling, [ch])
    await world.location(holding, [ch])
    sku = await sku_in(world, f"E2E-{unique}-E", {holding: 2})
    assert await world.stock_at(key, sku) == {holding: (2, 2)}
    sale = {
        "sale_id": f"EA{unique}",
        "store_id": selling,
        "staff_id": f"G-{unique}",
        "member_id": f"m-{unique}",
        "handover": "delivery",
        "delivery_address": address(**SH_CENTRE),
        "lines": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
        "total": 9900,
    }
    response = await world.post(key, f"/v1/channels/{ch}/pos/endless-aisle-orders", sale)
    assert response.status_code == 201, response.text
    routed = await world.routed(key, f"EA{unique}")
    assert routed["fulfilment_mode"] == "endless_aisle"
    [leg] = routed["fulfilments"]
    assert leg["location_id"] == holding
    # Held at the holding store for the sale: one fewer to promise, still on its shelf.
    assert (await world.stock_at(key, sku))[holding] == (1, 2)
    await world.store_reports(
        key, holding, routed["order_id"], leg["fulfilment_id"], "shipped", "SF9"
    )
    await world.store_reports(key, holding, routed["order_id"], leg["fulfilment_id"], "delivered")
    await world.until_status(key, f"EA{unique}", "completed")
    assert (await world.stock_at(key, sku))[holding] == (1, 1)


async def test_return_at_another_store_is_restocked_there(world: World, unique: str) -> None:
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
    await world.until_status(key, f"S{unique}", "completed")
    assert (await world.stock_at(key, sku)) == {store_a: (1, 1)}
    ret = {
        "return_id": f"R{unique}",
        "store_id": store_b,
        "order_id": order_id,
        "lines": [{"line_id": "1", "quantity": 1, "condition": "resaleable"}],
    }
    returned = await world.post(key, f"/v1/channels/{ch}/pos/returns", ret)
    assert returned.status_code == 201, returned.text
    assert returned.json()["refund_minor"] == 9900
    again = await world.post(key, f"/v1/channels/{ch}/pos/returns", ret)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    view = await world.view(key, f"S{unique}")
    assert [(r["receiving_location_id"], r["refund_minor"]) for r in view["returns"]] == [
        (store_b, 9900)
    ]

    async def restocked() -> None:
        assert await world.stock_at(key, sku) == {store_a: (1, 1), store_b: (1, 1)}

    await eventually(restocked, timeout=60)


async def test_marketplace_order_retried_concurrently_and_sequentially_exists_once(
    world: World, unique: str
) -> None:
    ch = f"TM-{unique}"
    key = await world.channel(ch, "tmall")
    store = f"ST-{unique}"
    await world.location(store, [ch])
    sku = await sku_in(world, f"E2E-{unique}-A", {store: 5})
    await map_skus(world, ch, {f"9{unique}": sku})
    path = f"/v1/channels/{ch}/tmall/trades"
    trade = tmall_trade(f"T{unique}", f"9{unique}")
    concurrent = await asyncio.gather(
        *(world.post_marketplace("tmall", key, path, trade) for _ in range(5))
    )
    sequential = [await world.post_marketplace("tmall", key, path, trade) for _ in range(5)]
    answers = [*concurrent, *sequential]
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert all(a.json()["duplicate"] for a in sequential)
    routed = await world.routed(key, f"T{unique}")
    assert routed["order_id"] == answers[0].json()["order_id"]
    assert [f["location_id"] for f in routed["fulfilments"]] == [store]
    # One order holds one unit: the retries reserved nothing more.
    assert (await world.stock_at(key, sku))[store] == (4, 5)
