"""Each connector over the real HTTP API, with the peers it needs (catalog for marketplace
SKU mappings, member for member codes)."""

from __future__ import annotations

import time

import grpc
import pytest
from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.member.v1 import events_pb2 as mem
from omni.member.v1 import member_service_pb2 as mem_svc
from omni.order.v1 import order_pb2 as ord_pb
from omni.order.v1 import order_service_pb2 as ord_svc

from libs.testing.services import eventually
from tests.integration.gateway.conftest import Platform, rid


async def map_skus(p: Platform, channel_id: str, pairs: dict[str, str]) -> None:
    await p.catalog.MapChannelSkus(
        cat_svc.MapChannelSkusRequest(
            request_id=rid(),
            channel_id=channel_id,
            mappings=[
                cat.ChannelSkuMapping(channel_id=channel_id, sku_code=sku, external_sku_id=ext)
                for ext, sku in pairs.items()
            ],
        )
    )


def tmall_trade(tid: str, sku_id: str) -> dict:
    return {
        "tid": tid,
        "receiver_state": "Zhejiang",
        "receiver_city": "Hangzhou",
        "receiver_address": "18 Wensan Rd",
        "payment": "198.00",
        "orders": [
            {"oid": f"{tid}1", "num_iid": "6400", "sku_id": sku_id, "num": 2, "price": "99.00"}
        ],
    }


async def test_tmall_trade_retried_five_times_exists_once(platform: Platform, unique: str) -> None:
    ch = f"TMALL-{unique}"
    key = await platform.channel(ch, "tmall")
    sku = f"TEE-{unique}-M"
    await platform.sku(sku)
    await map_skus(platform, ch, {f"5{unique}": sku})
    path = f"/v1/channels/{ch}/tmall/trades"
    answers = [
        await platform.post_marketplace("tmall", key, path, tmall_trade(f"T{unique}", f"5{unique}"))
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200]
    assert len({a.json()["order_id"] for a in answers}) == 1
    got = await platform.gateway.GetChannelOrder(
        gw_svc.GetChannelOrderRequest(channel_id=ch, channel_order_id=f"T{unique}")
    )
    assert got.order.order_id == answers[0].json()["order_id"]


async def test_tmall_unmapped_sku_and_bad_signature(platform: Platform, unique: str) -> None:
    ch = f"TMALL-{unique}"
    key = await platform.channel(ch, "tmall")
    path = f"/v1/channels/{ch}/tmall/trades"
    unmapped = await platform.post_marketplace("tmall", key, path, tmall_trade(f"U{unique}", "999"))
    assert unmapped.status_code == 422
    assert unmapped.json()["error"]["field_violations"][0]["field"] == "orders[0].sku_id"
    stale = await platform.post_marketplace(
        "tmall", key, path, tmall_trade(f"V{unique}", "999"), timestamp=int(time.time()) - 1000
    )
    assert stale.status_code == 401
    # The Omni scheme on a Tmall route is not a Tmall signature.
    omni = await platform.post(key, path, tmall_trade(f"W{unique}", "999"))
    assert omni.status_code == 401


async def test_jd_order(platform: Platform, unique: str) -> None:
    ch = f"JD-{unique}"
    key = await platform.channel(ch, "jd")
    sku = f"TEE-{unique}-L"
    await platform.sku(sku)
    await map_skus(platform, ch, {f"10{unique}": sku})
    body = {
        "orderId": int(time.time() * 1000),
        "orderPayment": "99.00",
        "consigneeInfo": {"province": "Beijing", "city": "Beijing", "fullAddress": "1 Jianguo Rd"},
        "itemInfoList": [{"skuId": f"10{unique}", "itemTotal": 1, "jdPrice": "99.00"}],
    }
    response = await platform.post_marketplace("jd", key, f"/v1/channels/{ch}/jd/orders", body)
    assert response.status_code == 201, response.text


async def test_pos_sale_and_return_at_another_store(platform: Platform, unique: str) -> None:
    ch = f"POS-{unique}"
    key = await platform.channel(ch, "pos")
    sku, store_a = await platform.stocked(ch, unique)
    store_b = f"STORE-B-{unique}"
    await platform.location(store_b, [ch])
    sale = {
        "sale_id": f"S{unique}",
        "store_id": store_a,
        "staff_id": "G1",
        "lines": [{"sku_code": sku, "quantity": 2, "unit_price": 9900}],
        "total": 19800,
    }
    sold = await platform.post(key, f"/v1/channels/{ch}/pos/sales", sale)
    assert sold.status_code == 201, sold.text
    order_id = sold.json()["order_id"]
    ret = {
        "return_id": f"R{unique}",
        "store_id": store_b,
        "order_id": order_id,
        "lines": [{"line_id": "1", "quantity": 1}],
    }

    async def returned() -> dict:
        # The sale completes at the counter once the order service allocated it.
        response = await platform.post(key, f"/v1/channels/{ch}/pos/returns", ret)
        assert response.status_code == 201, response.text
        return dict(response.json())

    first = await eventually(returned)
    assert first["refund_minor"] == 9900
    again = await platform.post(key, f"/v1/channels/{ch}/pos/returns", ret)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    unknown = await platform.post(
        key, f"/v1/channels/{ch}/pos/returns", {**ret, "return_id": "R2", "order_id": "o-nope"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NOT_FOUND"


async def test_pos_member_scan_resolves_through_member(platform: Platform, unique: str) -> None:
    ch = f"POS-{unique}"
    key = await platform.channel(ch, "pos")
    phone = "+86138" + str(int(unique, 16) % 10**8).zfill(8)
    member = (
        await platform.member.RegisterMember(
            mem_svc.RegisterMemberRequest(
                request_id=rid(), phone=phone, name="Li Lei", source=mem.SIGN_UP_SOURCE_SELF
            )
        )
    ).member
    code = (
        await platform.member.IssueMemberCode(
            mem_svc.IssueMemberCodeRequest(member_id=member.member_id)
        )
    ).code
    scanned = await platform.post(
        key, f"/v1/channels/{ch}/pos/member-scans", {"store_id": "STORE-A", "code": code}
    )
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["member_id"] == member.member_id
    bad = await platform.post(
        key, f"/v1/channels/{ch}/pos/member-scans", {"store_id": "STORE-A", "code": "garbage"}
    )
    # The member service's refusal is mapped, not a 5xx.
    assert bad.status_code in (404, 422), bad.text


async def test_local_life_voucher_paid_online_consumed_in_store(
    platform: Platform, unique: str
) -> None:
    ch = f"LL-{unique}"
    key = await platform.channel(ch, "local_life")
    sku, store = await platform.stocked(ch, unique)
    voucher = {
        "voucher_order_id": f"V{unique}",
        "deal_id": "DEAL",
        "store_id": store,
        "voucher_code": "1234",
        "user_phone": "13800001234",
        "items": [{"sku_code": sku, "quantity": 1, "price": 6900}],
        "paid_amount": 6900,
    }
    paid = await platform.post(key, f"/v1/channels/{ch}/local-life/vouchers", voucher)
    assert paid.status_code == 201, paid.text
    redeem = {"voucher_order_id": f"V{unique}", "voucher_code": "1234", "store_id": store}
    wrong_store = await platform.post(
        key, f"/v1/channels/{ch}/local-life/redemptions", {**redeem, "store_id": "STORE-ELSEWHERE"}
    )
    assert wrong_store.status_code == 409

    async def consumed() -> None:
        response = await platform.post(key, f"/v1/channels/{ch}/local-life/redemptions", redeem)
        assert response.status_code == 200, response.text
        assert response.json()["status"] in ("consumed", "completed")

    await eventually(consumed)
    order = await platform.order.GetOrder(ord_svc.GetOrderRequest(order_id=paid.json()["order_id"]))
    assert order.order.status == ord_pb.ORDER_STATUS_COMPLETED
    again = await platform.post(key, f"/v1/channels/{ch}/local-life/redemptions", redeem)
    assert again.status_code == 200 and again.json()["duplicate"] is True


async def test_route_of_another_connector_is_404(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sale = {
        "sale_id": "S",
        "store_id": "X",
        "lines": [{"sku_code": "A", "quantity": 1, "unit_price": 1}],
        "total": 1,
    }
    response = await platform.post(key, f"/v1/channels/{ch}/pos/sales", sale)
    assert response.status_code == 404


async def test_credentials_secret_is_shown_once(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    await platform.channel(ch, "web_mall")
    request = gw_svc.IssueCredentialRequest(
        request_id=rid(),
        owner_kind=gw.OWNER_KIND_PARTNER,
        owner_id="D1",
        channel_id=ch,
        scopes=["orders:read"],
    )
    issued = await platform.gateway.IssueCredential(request)
    retried = await platform.gateway.IssueCredential(request)
    assert issued.secret and retried.credential.key_id == issued.credential.key_id
    listed = await platform.gateway.ListCredentials(gw_svc.ListCredentialsRequest(channel_id=ch))
    assert issued.credential.key_id in [c.key_id for c in listed.credentials]
    assert issued.secret not in str(listed)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await platform.gateway.IssueCredential(
            gw_svc.IssueCredentialRequest(
                request_id=rid(),
                owner_kind=gw.OWNER_KIND_PARTNER,
                owner_id="D1",
                channel_id=ch,
                scopes=["nope"],
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_pos_member_sign_up_makes_the_guide_the_owner(
    platform: Platform, unique: str
) -> None:
    ch = f"POS-{unique}"
    key = await platform.channel(ch, "pos")
    phone = "+86137" + str(int(unique, 16) % 10**8).zfill(8)
    body = {"phone": phone, "name": "Han Meimei", "store_id": "S1", "guide_staff_id": f"G-{unique}"}
    joined = await platform.post(key, f"/v1/channels/{ch}/pos/member-sign-ups", body)
    assert joined.status_code == 201, joined.text
    assert joined.json()["owner_guide_staff_id"] == f"G-{unique}"
    again = await platform.post(key, f"/v1/channels/{ch}/pos/member-sign-ups", body)
    assert again.json()["member_id"] == joined.json()["member_id"]
    bad = await platform.post(
        key, f"/v1/channels/{ch}/pos/member-sign-ups", {**body, "phone": "abc"}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field_violations"][0]["field"] == "phone"


async def test_stores_report_their_work_on_online_orders(platform: Platform, unique: str) -> None:
    """O2O: a mall order routed to a store is shipped (with tracking) and confirmed by the
    store's POS; only a store of the POS channel, only for its own fulfilment order."""
    mall, pos_ch = f"MALL-{unique}", f"POS-{unique}"
    mall_key = await platform.channel(mall, "web_mall")
    pos_key = await platform.channel(pos_ch, "pos")
    store, other = f"STORE-{unique}", f"OTHER-{unique}"
    await platform.location(store, [mall, pos_ch])
    await platform.location(other, [pos_ch])
    sku = f"GW-{unique}-M"
    await platform.sku(sku)
    await platform.tracked(sku)
    await platform.receive(store, sku, 3)
    order = {
        "order_no": f"W{unique}",
        "member_id": "m-1",
        "fulfilment": "express",
        "delivery_address": {"province": "Shanghai", "city": "Shanghai", "street": "1 Rd"},
        "items": [{"sku_code": sku, "quantity": 1, "unit_price": 5000}],
        "total": 5000,
    }
    placed = await platform.post(mall_key, f"/v1/channels/{mall}/mall/orders", order)
    assert placed.status_code == 201, placed.text

    async def routed() -> dict:
        view = await platform.get(mall_key, f"/open/v1/orders/W{unique}")
        assert view.status_code == 200, view.text
        assert view.json()["fulfilments"], view.json()
        return dict(view.json())

    view = await eventually(routed, timeout=30)
    [leg] = view["fulfilments"]
    assert leg["location_id"] == store and leg["status"] == "pending"
    path = f"/v1/channels/{pos_ch}/pos/fulfilment-updates"
    update = {
        "store_id": store,
        "order_id": view["order_id"],
        "fulfilment_id": leg["fulfilment_id"],
        "action": "shipped",
        "tracking": "SF123",
    }
    not_theirs = await platform.post(pos_key, path, {**update, "store_id": other})
    assert not_theirs.status_code == 403, not_theirs.text
    foreign = await platform.post(mall_key, f"/v1/channels/{mall}/pos/fulfilment-updates", update)
    assert foreign.status_code == 404
    unknown = await platform.post(pos_key, path, {**update, "fulfilment_id": "f-nope"})
    assert unknown.status_code == 404
    shipped = await platform.post(pos_key, path, update)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped" and shipped.json()["tracking"] == "SF123"
    again = await platform.post(pos_key, path, update)
    assert again.status_code == 200 and again.json()["status"] == "shipped"
    delivered = await platform.post(pos_key, path, {**update, "action": "delivered"})
    assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
    done = (await platform.get(mall_key, f"/open/v1/orders/W{unique}")).json()
    assert done["platform_status"] == "completed"
    assert done["fulfilments"][0]["tracking"] == "SF123"


async def test_availability_per_store_and_nearby_stock(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    near, far, empty = f"NEAR-{unique}", f"FAR-{unique}", f"EMPTY-{unique}"
    await platform.location(near, [ch], latitude=31.2305, longitude=121.4740)
    await platform.location(far, [ch], latitude=31.30, longitude=121.60)
    await platform.location(empty, [ch], latitude=31.2304, longitude=121.4738)
    sku = f"GW-{unique}-N"
    await platform.sku(sku)
    await platform.tracked(sku)
    await platform.receive(near, sku, 2)
    await platform.receive(far, sku, 5)
    stock = await platform.get(
        key, "/open/v1/availability", params=[("sku_codes", sku), ("include_locations", "true")]
    )
    assert stock.status_code == 200, stock.text
    [item] = stock.json()["skus"]
    assert item["available"] == 7
    assert {x["location_id"]: x["available"] for x in item["locations"]} == {near: 2, far: 5}
    nearby = await platform.get(
        key,
        "/open/v1/nearby-stock",
        params=[
            ("sku_codes", sku),
            ("latitude", "31.2304"),
            ("longitude", "121.4737"),
            ("capability", "same_city_delivery"),
        ],
    )
    assert nearby.status_code == 200, nearby.text
    found = nearby.json()["locations"]
    assert [x["location_id"] for x in found] == [near, far]
    assert found[0]["available"] == {sku: 2} and found[0]["has_all"] is True
    bad = await platform.get(
        key,
        "/open/v1/nearby-stock",
        params=[("sku_codes", sku), ("latitude", "91"), ("longitude", "0")],
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field_violations"][0]["field"] == "latitude"
