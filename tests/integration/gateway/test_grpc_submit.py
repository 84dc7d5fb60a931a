"""SubmitChannelOrder: adapters that speak gRPC send the channel's own payload, signed with
the channel's key in the metadata; the same ingest path as HTTP — stored raw first,
accepted once per channel order id (across both transports), refusals as status codes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
import pytest
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc

from libs.grpc_errors import field_violations
from services.gateway.domain import signatures
from services.gateway.entrypoints.grpc_inbound import METHOD, signed_path
from tests.integration.gateway.conftest import Key, Platform, rid
from tests.integration.gateway.test_connectors_http import map_skus, tmall_trade


def mall_order(order_no: str, sku: str, quantity: int = 1) -> dict[str, Any]:
    return {
        "order_no": order_no,
        "member_id": "m-1",
        "fulfilment": "express",
        "delivery_address": {"province": "Shanghai", "city": "Shanghai", "street": "1 Rd"},
        "items": [{"sku_code": sku, "quantity": quantity, "unit_price": 5000}],
        "total": 5000 * quantity,
    }


async def submit(
    p: Platform,
    key: Key,
    connector: gw.ConnectorType.ValueType,
    payload: Any,
    *,
    route: str = "",
    secret: str | None = None,
    channel_id: str | None = None,
) -> gw_svc.SubmitChannelOrderResponse:
    body = json.dumps(payload).encode()
    ch = channel_id or key.channel_id
    signed_route = route or {
        gw.CONNECTOR_TYPE_WEB_MALL: "mall.orders",
        gw.CONNECTOR_TYPE_TMALL: "tmall.trades",
    }.get(connector, "")
    ts, nonce = int(time.time()), rid()
    signature = signatures.sign(
        secret or key.secret, METHOD, signed_path(ch, signed_route), ts, nonce, body
    )
    return await p.gateway.SubmitChannelOrder(
        gw_svc.SubmitChannelOrderRequest(
            channel_id=ch, connector=connector, route=route, payload=body
        ),
        metadata=(
            ("x-omni-key", key.key_id),
            ("x-omni-timestamp", str(ts)),
            ("x-omni-nonce", nonce),
            ("x-omni-signature", signature),
        ),
    )


async def test_submitted_once_whatever_the_retries_and_the_transport(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    first = await submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("G1", sku))
    assert first.order_id and first.channel_order_id == "G1" and not first.duplicate
    answers = await asyncio.gather(
        *(
            submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("G1", sku))
            for _ in range(5)
        )
    )
    assert {a.order_id for a in answers} == {first.order_id}
    assert all(a.duplicate for a in answers)
    over_http = await platform.post(key, f"/v1/channels/{ch}/mall/orders", mall_order("G1", sku))
    assert over_http.status_code == 200 and over_http.json()["order_id"] == first.order_id
    # Stored raw, with the outcome, the signature left out.
    listed = await platform.gateway.ListPayloads(gw_svc.ListPayloadsRequest(channel_id=ch))
    grpc_payloads = [p for p in listed.payloads if p.method == "GRPC"]
    assert len(grpc_payloads) == 6
    stored = next(p for p in grpc_payloads if p.payload_id == first.payload_id)
    assert json.loads(stored.body)["order_no"] == "G1"
    assert stored.outcome == gw.PAYLOAD_OUTCOME_ACCEPTED and stored.route == "mall.orders"
    assert "x-omni-signature" not in stored.headers
    replayed = await platform.gateway.ReplayPayload(
        gw_svc.ReplayPayloadRequest(request_id=rid(), payload_id=first.payload_id)
    )
    assert replayed.http_status == 200 and first.order_id in replayed.body


async def test_concurrent_first_submissions_create_one_order(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    answers = await asyncio.gather(
        *(
            submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("C1", sku))
            for _ in range(5)
        )
    )
    assert len({a.order_id for a in answers}) == 1
    assert [a.duplicate for a in answers].count(False) == 1


async def test_marketplace_payload_is_translated_by_its_connector(
    platform: Platform, unique: str
) -> None:
    ch = f"TMALL-{unique}"
    key = await platform.channel(ch, "tmall")
    sku = f"TEE-{unique}-M"
    await platform.sku(sku)
    await map_skus(platform, ch, {f"5{unique}": sku})
    answer = await submit(
        platform, key, gw.CONNECTOR_TYPE_TMALL, tmall_trade(f"T{unique}", f"5{unique}")
    )
    assert answer.channel_order_id == f"T{unique}" and not answer.duplicate


async def code_of(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_refusals_are_status_codes_naming_the_field_and_write_no_order(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    wrong_key = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("B1", "X"), secret="nope")
    )
    assert wrong_key.code() == grpc.StatusCode.UNAUTHENTICATED
    bad = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("B2", "X", quantity=0))
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(bad)] == ["payload.items[0].quantity"]
    nul = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("B3", "X\x00"))
    )
    assert [f for f, _ in field_violations(nul)] == ["payload.items[0].sku_code"]
    connector = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_TMALL, mall_order("B4", "X"), route="tmall.trades")
    )
    assert connector.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(connector)] == ["connector"]
    route = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("B5", "X"), route="pos.sales")
    )
    assert [f for f, _ in field_violations(route)] == ["route"]
    other = f"MALL2-{unique}"
    await platform.channel(other, "web_mall")
    foreign = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("B6", "X"), channel_id=other)
    )
    assert foreign.code() == grpc.StatusCode.PERMISSION_DENIED
    unknown_sku = await code_of(
        submit(platform, key, gw.CONNECTOR_TYPE_WEB_MALL, mall_order("B7", "NO-SUCH-SKU"))
    )
    assert unknown_sku.code() == grpc.StatusCode.INVALID_ARGUMENT, unknown_sku.details()
    listed = await platform.gateway.ListPayloads(
        gw_svc.ListPayloadsRequest(channel_id=ch, outcome=gw.PAYLOAD_OUTCOME_REJECTED)
    )
    assert len([p for p in listed.payloads if p.method == "GRPC"]) >= 5
    for order_no in ("B1", "B2", "B3", "B4", "B5", "B7"):
        missing = await code_of(
            platform.gateway.GetChannelOrder(
                gw_svc.GetChannelOrderRequest(channel_id=ch, channel_order_id=order_no)
            )
        )
        assert missing.code() == grpc.StatusCode.NOT_FOUND
