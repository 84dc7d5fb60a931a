"""The open API for partners: catalog read, availability, order submit and status, with
scopes, per-key rate limits and one partner never seeing another's orders."""

from __future__ import annotations

from tests.integration.gateway.conftest import Platform


def shop_order(order_id: str, distributor_id: str, sku: str = "NO-SUCH-SKU") -> dict:
    return {
        "shop_order_id": order_id,
        "distributor_id": distributor_id,
        "member_id": "m-1",
        "delivery_address": {"province": "Jiangsu", "city": "Suzhou", "street": "5 Renmin Rd"},
        "lines": [{"sku_code": sku, "quantity": 1, "unit_price": 8900}],
        "total": 8900,
    }


async def test_partner_submits_and_reads_only_its_own_orders(
    platform: Platform, unique: str
) -> None:
    ch = f"DIST-{unique}"
    await platform.channel(ch, "distributor_shop")
    sku, _ = await platform.stocked(ch, unique)
    d1 = await platform.key(ch, "partner", f"D1-{unique}", ["orders:write", "orders:read"])
    d2 = await platform.key(ch, "partner", f"D2-{unique}", ["orders:write", "orders:read"])
    submitted = await platform.post(
        d1, "/open/v1/orders", shop_order(f"O{unique}", f"D1-{unique}", sku)
    )
    assert submitted.status_code == 201, submitted.text
    mine = await platform.get(d1, f"/open/v1/orders/O{unique}")
    assert mine.status_code == 200
    assert mine.json()["order_id"] == submitted.json()["order_id"]
    assert mine.json()["total_minor"] == 8900
    # Order ids are per partner: d2's "O…" is d2's own (it has none), so d1's order cannot
    # even be named by d2.
    theirs = await platform.get(d2, f"/open/v1/orders/O{unique}")
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "NOT_FOUND"
    # Nor may a partner submit as another distributor; nothing is written.
    spoof = await platform.post(
        d2, "/open/v1/orders", shop_order(f"P{unique}", f"D1-{unique}", sku)
    )
    assert spoof.status_code == 403
    assert spoof.json()["error"]["code"] == "PERMISSION_DENIED"
    assert (await platform.get(d1, f"/open/v1/orders/P{unique}")).status_code == 404


async def test_scopes_are_enforced(platform: Platform, unique: str) -> None:
    ch = f"DIST-{unique}"
    await platform.channel(ch, "distributor_shop")
    reader = await platform.key(ch, "partner", f"D1-{unique}", ["orders:read"])
    response = await platform.post(
        reader, "/open/v1/orders", shop_order(f"O{unique}", f"D1-{unique}")
    )
    assert response.status_code == 403
    assert (
        await platform.get(reader, "/open/v1/availability", params=[("sku_codes", "A")])
    ).status_code == 403


async def test_catalog_read_and_availability(platform: Platform, unique: str) -> None:
    ch = f"DIST-{unique}"
    await platform.channel(ch, "distributor_shop")
    key = await platform.key(ch, "partner", f"D1-{unique}", ["catalog:read", "availability:read"])
    sku = f"TEE-{unique}-S"
    await platform.sku(sku, price=12900)
    await platform.tracked(sku)
    await platform.location(f"LOC-{unique}", [ch])
    await platform.receive(f"LOC-{unique}", sku, 7)
    got = await platform.get(key, f"/open/v1/skus/{sku}")
    assert got.status_code == 200, got.text
    assert got.json()["sku_code"] == sku
    missing = await platform.get(key, "/open/v1/skus/NOPE-NOPE")
    assert missing.status_code == 404
    stock = await platform.get(key, "/open/v1/availability", params=[("sku_codes", sku)])
    assert stock.status_code == 200, stock.text
    assert stock.json()["skus"] == [{"sku_code": sku, "available": 7}]
    # Inventory's INVALID_ARGUMENT comes back as 422 naming the field.
    params = [("sku_codes", sku), ("sku_codes", "UNKNOWN-1")]
    unknown = await platform.get(key, "/open/v1/availability", params=params)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field_violations"][0]["field"] == "sku_codes[1]"


async def test_per_key_rate_limit(platform: Platform, unique: str) -> None:
    ch = f"DIST-{unique}"
    await platform.channel(ch, "distributor_shop")
    slow = await platform.key(ch, "partner", f"D1-{unique}", ["orders:read"], rate=1, burst=1)
    fast = await platform.key(ch, "partner", f"D2-{unique}", ["orders:read"])
    assert (await platform.get(slow, "/open/v1/orders/X")).status_code == 404
    limited = await platform.get(slow, "/open/v1/orders/X")
    assert limited.status_code == 429 and "retry-after" in limited.headers
    # Another key of the same channel has its own bucket.
    assert (await platform.get(fast, "/open/v1/orders/X")).status_code == 404


async def test_two_partners_may_use_the_same_order_id(platform: Platform, unique: str) -> None:
    """A shared distributor channel: B's order "O1" is B's order, not a duplicate of A's —
    B neither learns A's order id nor loses its own order."""
    from omni.gateway.v1 import gateway_service_pb2 as gw_svc
    from omni.order.v1 import order_service_pb2 as ord_svc

    ch = f"DIST-{unique}"
    await platform.channel(ch, "distributor_shop")
    sku, _ = await platform.stocked(ch, unique)
    a_id, b_id = f"DA-{unique}", f"DB-{unique}"
    a = await platform.key(ch, "partner", a_id, ["orders:write", "orders:read"])
    b = await platform.key(ch, "partner", b_id, ["orders:write", "orders:read"])
    from_a = await platform.post(a, "/open/v1/orders", shop_order("O1", a_id, sku))
    from_b = await platform.post(b, "/open/v1/orders", shop_order("O1", b_id, sku))
    assert from_a.status_code == 201, from_a.text
    assert from_b.status_code == 201, from_b.text
    assert from_b.json()["duplicate"] is False
    assert from_b.json()["order_id"] != from_a.json()["order_id"]
    assert from_b.json()["channel_order_id"] == "O1"
    again = await platform.post(b, "/open/v1/orders", shop_order("O1", b_id, sku))
    assert again.status_code == 200 and again.json()["order_id"] == from_b.json()["order_id"]
    for key, answer in ((a, from_a), (b, from_b)):
        read = await platform.get(key, "/open/v1/orders/O1")
        assert read.status_code == 200, read.text
        assert read.json()["order_id"] == answer.json()["order_id"]
        assert read.json()["channel_order_id"] == "O1"
    listed = await platform.order.ListOrders(ord_svc.ListOrdersRequest(channel_id=ch))
    assert sorted(o.channel_order_id for o in listed.orders) == [f"{a_id}/O1", f"{b_id}/O1"]
    operator = await platform.gateway.GetChannelOrder(
        gw_svc.GetChannelOrderRequest(channel_id=ch, channel_order_id="O1", partner_id=b_id)
    )
    assert operator.order.order_id == from_b.json()["order_id"]
    # A shop order id cannot be made to look like another partner's.
    spoof = await platform.post(a, "/open/v1/orders", shop_order(f"{b_id}/O2", a_id, sku))
    assert spoof.status_code == 422
    assert spoof.json()["error"]["field_violations"][0]["field"] == "shop_order_id"
