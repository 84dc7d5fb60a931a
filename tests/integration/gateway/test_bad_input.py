"""Bad HTTP input is a 4xx naming the field, never a 5xx: NUL and control characters in the
path, query, signature headers and JSON strings, lone surrogates, numbers no field can
hold, absurdly long ids. The refused POST is still kept raw for inspection."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import sqlalchemy as sa

from services.gateway.adapters.tables import inbound_payloads
from tests.integration.gateway.conftest import Platform, rid


def fields(response: object) -> list[str]:
    body = response.json()  # type: ignore[attr-defined]
    return [v["field"] for v in body["error"]["field_violations"]]


def mall_order(order_no: str) -> dict:
    return {
        "order_no": order_no,
        "member_id": "m-1",
        "fulfilment": "express",
        "delivery_address": {"province": "Zhejiang", "city": "Hangzhou", "street": "1 Rd"},
        "items": [{"sku_code": "NO-SKU", "quantity": 1, "unit_price": 100}],
        "total": 100,
    }


async def test_nul_in_a_marketplace_query_parameter_is_422_naming_it(
    platform: Platform, unique: str
) -> None:
    ch = f"TM-{unique}"
    await platform.channel(ch, "tmall")
    response = await platform.http.post(
        f"/v1/channels/{ch}/tmall/trades?app_key=%00&timestamp=1&sign=A",
        content=b"{}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "query.app_key" in fields(response)
    # Kept for inspection, with its outcome.
    async with platform.db.session() as session:
        row = (
            await session.execute(
                sa.select(inbound_payloads)
                .where(inbound_payloads.c.channel_id == ch)
                .order_by(inbound_payloads.c.payload_id.desc())
            )
        ).first()
    assert row is not None and row.outcome == "rejected" and row.http_status == 422


async def test_control_characters_and_bad_utf8_in_query_and_path(
    platform: Platform, unique: str
) -> None:
    ch = f"DIST-{unique}"
    await platform.channel(ch, "distributor_shop")
    key = await platform.key(ch, "partner", f"P-{unique}", ["availability:read", "orders:read"])
    for value in ("A%01B", "%FF%FE", "x" * 2000):
        response = await platform.http.get(f"/open/v1/availability?sku_codes={value}")
        assert response.status_code == 422, (value, response.text)
        assert fields(response) == ["query.sku_codes"]
    response = await platform.http.get("/open/v1/orders/A%00B")
    assert response.status_code == 422 and fields(response) == ["path"]
    # Signed and all: the guard runs before anything else.
    signed = await platform.get(key, "/open/v1/orders/" + quote("A\x07B"))
    assert signed.status_code == 422 and fields(signed) == ["path"]


async def test_bad_signature_headers_are_4xx(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    await platform.channel(ch, "web_mall")
    path = f"/v1/channels/{ch}/mall/orders"
    body = json.dumps(mall_order(f"W{unique}")).encode()
    base = {
        "content-type": "application/json",
        "x-omni-key": "k",
        "x-omni-timestamp": str(int(time.time())),
        "x-omni-nonce": rid(),
        "x-omni-signature": "00",
    }
    huge_ts = await platform.http.post(
        path, content=body, headers={**base, "x-omni-timestamp": "9" * 5000}
    )
    assert huge_ts.status_code == 422 and fields(huge_ts) == ["header.x-omni-timestamp"]
    long_ts = await platform.http.post(
        path, content=body, headers={**base, "x-omni-timestamp": "9" * 40}
    )
    assert long_ts.status_code == 401, long_ts.text
    raw_headers = [(k.encode(), v.encode()) for k, v in base.items() if k != "x-omni-key"]
    latin = await platform.http.post(
        path, content=body, headers=[*raw_headers, (b"x-omni-key", "k\xe9y".encode("latin-1"))]
    )
    assert latin.status_code == 422 and fields(latin) == ["header.x-omni-key"]


async def test_json_strings_and_numbers_are_checked_centrally(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    path = f"/v1/channels/{ch}/mall/orders"
    nul = mall_order(f"A{unique}")
    nul["items"][0]["sku_code"] = "TEE\x00"
    response = await platform.post(key, path, nul)
    assert response.status_code == 422 and fields(response) == ["items[0].sku_code"]
    bell = mall_order(f"B{unique}")
    bell["delivery_address"]["street"] = "1\x07Rd"
    response = await platform.post(key, path, bell)
    assert response.status_code == 422 and fields(response) == ["delivery_address.street"]
    # A newline in an address line is ordinary text (then refused only by the order rules).
    surrogate = json.dumps(mall_order(f"C{unique}")).replace('"m-1"', '"m-\\ud800"')
    response = await platform.post(key, path, None, raw=surrogate.encode())
    assert response.status_code == 422 and fields(response) == ["member_id"]
    huge = json.dumps(mall_order(f"D{unique}")).replace('"total": 100', '"total": ' + "9" * 5000)
    response = await platform.post(key, path, None, raw=huge.encode())
    assert response.status_code == 422 and fields(response) == ["total"]
    nan = json.dumps(mall_order(f"E{unique}")).replace(
        '"street": "1 Rd"', '"street": "1 Rd", "latitude": NaN'
    )
    response = await platform.post(key, path, None, raw=nan.encode())
    assert response.status_code == 422 and fields(response) == ["delivery_address.latitude"]
    deep = b"[" * 5000 + b"]" * 5000
    response = await platform.post(key, path, None, raw=deep)
    assert response.status_code == 422 and fields(response) == ["body"]
    latin1 = await platform.post(key, path, None, raw='{"order_no": "\xe9"}'.encode("latin-1"))
    assert latin1.status_code == 422 and fields(latin1) == ["body"]


async def test_hostile_paths_are_stored_and_answered_4xx(platform: Platform, unique: str) -> None:
    long_channel = "C" * 5000
    response = await platform.http.post(
        f"/v1/channels/{long_channel}/pos/sales",
        content=b"{}",
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    odd_route = await platform.http.post(
        f"/v1/channels/X-{unique}/{'r' * 3000}/{'s' * 3000}",
        content=b"{}",
        headers={"content-type": "application/json"},
    )
    assert 400 <= odd_route.status_code < 500, odd_route.text
