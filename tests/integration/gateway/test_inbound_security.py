"""Signatures, replay window, nonces, scopes, rate limits, raw payload storage, the error
shape and once-only order acceptance, over the real HTTP API."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc

from services.gateway.adapters.tables import channel_orders, inbound_payloads
from tests.integration.gateway.conftest import Platform, rid


def mall_order(order_no: str, sku: str = "NO-SUCH-SKU", qty: int = 2, price: int = 5000) -> dict:
    return {
        "order_no": order_no,
        "member_id": "m-1",
        "fulfilment": "express",
        "delivery_address": {
            "province": "Zhejiang",
            "city": "Hangzhou",
            "street": "1 West Lake Rd",
        },
        "items": [{"sku_code": sku, "quantity": qty, "unit_price": price}],
        "total": qty * price,
    }


async def order_count(p: Platform, channel_id: str) -> int:
    async with p.db.session() as s:
        return int(
            (
                await s.execute(
                    sa.select(sa.func.count())
                    .select_from(channel_orders)
                    .where(channel_orders.c.channel_id == channel_id)
                )
            ).scalar_one()
        )


async def payloads(p: Platform, channel_id: str) -> list[sa.Row]:
    async with p.db.session() as s:
        return list(
            await s.execute(
                sa.select(inbound_payloads)
                .where(inbound_payloads.c.channel_id == channel_id)
                .order_by(inbound_payloads.c.payload_id)
            )
        )


async def test_signed_order_is_accepted_once_and_payload_kept(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    path = f"/v1/channels/{ch}/mall/orders"
    first = await platform.post(key, path, mall_order("W1", sku))
    assert first.status_code == 201, first.text
    again = await platform.post(key, path, mall_order("W1", sku))
    assert again.status_code == 200
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.json()["duplicate"] is True
    assert await order_count(platform, ch) == 1
    rows = await payloads(platform, ch)
    assert [r.outcome for r in rows] == ["accepted", "accepted"]
    assert rows[0].body.startswith(b'{"order_no": "W1"')
    # The signature is never stored; the key id is (it is not a secret).
    assert "x-omni-signature" not in rows[0].headers
    assert rows[0].headers["x-omni-key"] == key.key_id


async def test_wrong_key_stale_timestamp_and_replayed_nonce_are_401_and_write_no_order(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    path = f"/v1/channels/{ch}/mall/orders"
    wrong = await platform.post(key, path, mall_order("X1", sku), secret="not-the-secret")
    stale = await platform.post(key, path, mall_order("X2", sku), timestamp=int(time.time()) - 3600)
    nonce = rid()
    ok = await platform.post(key, path, mall_order("X3", sku), nonce=nonce)
    replayed = await platform.post(key, path, mall_order("X4", sku), nonce=nonce)
    assert (wrong.status_code, stale.status_code, ok.status_code, replayed.status_code) == (
        401,
        401,
        201,
        401,
    )
    for response in (wrong, stale, replayed):
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert await order_count(platform, ch) == 1
    # Refused payloads are kept for inspection, with the answer.
    rows = await payloads(platform, ch)
    rejected = [r for r in rows if r.outcome == "rejected"]
    assert len(rejected) == 3 and all(r.http_status == 401 for r in rejected)


async def test_malformed_order_is_422_naming_the_field_and_kept(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    path = f"/v1/channels/{ch}/mall/orders"
    bad = mall_order("B1", sku)
    bad["items"][0]["quantity"] = 0
    response = await platform.post(key, path, bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["field_violations"]] == ["items[0].quantity"]
    wrong_total = mall_order("B2", sku)
    wrong_total["total"] = 1
    response = await platform.post(key, path, wrong_total)
    assert response.status_code == 422
    assert response.json()["error"]["field_violations"][0]["field"] == "total"
    not_json = await platform.post(key, path, None, raw=b"{not json")
    assert not_json.status_code == 422
    assert await order_count(platform, ch) == 0
    listed = await platform.gateway.ListPayloads(
        gw_svc.ListPayloadsRequest(channel_id=ch, outcome=gw.PAYLOAD_OUTCOME_REJECTED)
    )
    assert len(listed.payloads) == 3
    assert b"{not json" in [p.body for p in listed.payloads]
    assert all("INVALID_ARGUMENT" in p.error for p in listed.payloads)


async def test_key_of_another_channel_is_403(platform: Platform, unique: str) -> None:
    mine = await platform.channel(f"MALL-A-{unique}", "web_mall")
    await platform.channel(f"MALL-B-{unique}", "web_mall")
    response = await platform.post(
        mine, f"/v1/channels/MALL-B-{unique}/mall/orders", mall_order("Z")
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"


async def test_rate_limit_answers_429_with_retry_after(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall", rate=1, burst=2)
    path = f"/v1/channels/{ch}/mall/orders"
    # The bucket is charged before the body is looked at, so refused bodies (answered fast,
    # nothing captured) spend tokens too and the third request in a row finds it empty.
    statuses = [(await platform.post(key, path, {"order_no": f"R{i}"})) for i in range(3)]
    assert [r.status_code for r in statuses[:2]] == [422, 422]
    assert statuses[2].status_code == 429
    assert int(statuses[2].headers["retry-after"]) >= 1
    assert statuses[2].json()["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert await order_count(platform, ch) == 0


async def test_suspended_channel_is_refused(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    await platform.gateway.UpdateChannel(
        gw_svc.UpdateChannelRequest(
            request_id=rid(), channel_id=ch, status=gw.CHANNEL_STATUS_SUSPENDED
        )
    )
    response = await platform.post(key, f"/v1/channels/{ch}/mall/orders", mall_order("S1"))
    assert response.status_code == 403
    assert await order_count(platform, ch) == 0


async def test_replay_payload_reprocesses_and_stays_once(platform: Platform, unique: str) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    first = await platform.post(key, f"/v1/channels/{ch}/mall/orders", mall_order("P1", sku))
    listed = await platform.gateway.ListPayloads(gw_svc.ListPayloadsRequest(channel_id=ch))
    replayed = await platform.gateway.ReplayPayload(
        gw_svc.ReplayPayloadRequest(request_id=rid(), payload_id=listed.payloads[0].payload_id)
    )
    assert replayed.http_status == 200
    assert first.json()["order_id"] in replayed.body
    assert await order_count(platform, ch) == 1


def inbound_count(kind: str, route: str, result: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "omni_gateway_inbound_payloads_total",
        {"channel_kind": kind, "route": route, "result": result},
    )
    return value or 0.0


async def test_inbound_payloads_are_counted_by_channel_kind_route_and_result(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    path = f"/v1/channels/{ch}/mall/orders"
    labels = ("own_online", "mall.orders")
    before = {r: inbound_count(*labels, r) for r in ("accepted", "duplicate", "rejected")}
    assert (await platform.post(key, path, mall_order("M1", sku))).status_code == 201
    assert (await platform.post(key, path, mall_order("M1", sku))).status_code == 200
    bad = mall_order("M2", sku)
    bad["items"][0]["quantity"] = 0
    assert (await platform.post(key, path, bad)).status_code == 422
    # Unauthenticated: counted under the kind its route serves.
    assert (await platform.http.post(path, content=b"{}")).status_code == 401
    after = {r: inbound_count(*labels, r) for r in ("accepted", "duplicate", "rejected")}
    assert after == {
        "accepted": before["accepted"] + 1,
        "duplicate": before["duplicate"] + 1,
        "rejected": before["rejected"] + 2,
    }


async def test_unauthenticated_payloads_are_cut_short_and_purged(
    platform: Platform, unique: str
) -> None:
    """A forged flood is kept for inspection but bounded: 4 KB per row, deleted after the
    TTL; authenticated payloads are whole and kept."""
    from datetime import UTC, datetime, timedelta

    from services.gateway.service_layer import inbound

    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    path = f"/v1/channels/{ch}/mall/orders"
    padded = {**mall_order("F1"), "member_id": "m-" + "x" * 50}
    big = json.dumps(padded).encode() + b" " * 200_000
    forged = await platform.post(key, path, None, raw=big, secret="wrong")
    assert forged.status_code == 401
    genuine = await platform.post(key, path, None, raw=big)
    assert genuine.status_code != 401
    async with platform.db.session() as s:
        rows = list(
            await s.execute(
                sa.select(inbound_payloads)
                .where(inbound_payloads.c.path == path)
                .order_by(inbound_payloads.c.payload_id)
            )
        )
    assert [(r.authenticated, len(r.body)) for r in rows] == [
        (False, inbound.UNAUTHENTICATED_BODY_BYTES),
        (True, len(big)),
    ]
    later = datetime.now(UTC) + timedelta(days=2)
    assert await inbound.purge_unauthenticated(platform.db, now=later) >= 1
    async with platform.db.session() as s:
        kept = list(
            await s.execute(
                sa.select(inbound_payloads.c.payload_id).where(inbound_payloads.c.path == path)
            )
        )
    assert [r.payload_id for r in kept] == [rows[1].payload_id]
