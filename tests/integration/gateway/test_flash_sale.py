"""The inbound path under a flash sale: cached keys that still stop at once when revoked or
suspended (on this replica or another), rate limits shared by replicas through leased
tokens, and back-pressure — a burst far above capacity gets only 2xx, 429 or 503 with
Retry-After, and every accepted order exists exactly once at the order service."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter

import httpx
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.order.v1 import order_service_pb2 as ord_svc

from libs.local_stack import free_port
from libs.testing.services import running_service
from services.gateway.domain import rate_limit, signatures
from services.gateway.service_layer.rate_limiter import RateLimited, RateLimiter
from tests.integration.gateway.conftest import Key, Platform, rid


def order_body(order_no: str, sku: str) -> bytes:
    return json.dumps(
        {
            "order_no": order_no,
            "member_id": "m-1",
            "fulfilment": "express",
            "delivery_address": {"province": "Zhejiang", "city": "Hangzhou", "street": "1 Rd"},
            "items": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
            "total": 9900,
        }
    ).encode()


async def post(http: httpx.AsyncClient, key: Key, path: str, body: bytes) -> httpx.Response:
    ts = int(time.time())
    nonce = rid()
    return await http.post(
        path,
        content=body,
        headers={
            "content-type": "application/json",
            "x-omni-key": key.key_id,
            "x-omni-timestamp": str(ts),
            "x-omni-nonce": nonce,
            "x-omni-signature": signatures.sign(key.secret, "POST", path, ts, nonce, body),
        },
    )


async def test_revoked_key_is_refused_at_once_though_it_was_cached(
    platform: Platform, unique: str
) -> None:
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique)
    path = f"/v1/channels/{ch}/mall/orders"
    assert (await post(platform.http, key, path, order_body("R1", sku))).status_code == 201
    await platform.gateway.RevokeCredential(
        gw_svc.RevokeCredentialRequest(request_id=rid(), key_id=key.key_id)
    )
    refused = await post(platform.http, key, path, order_body("R2", sku))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_revoke_or_suspend_by_another_replica_is_refused_by_the_next_request(
    platform: Platform, unique: str
) -> None:
    """This replica's cache still holds the key as valid: the statement that stores the
    payload re-checks key and channel, so the change counts from the next request."""
    assert platform.pg is not None
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    other = await platform.key(ch, "channel", ch, ["orders:write"])
    sku, _ = await platform.stocked(ch, unique)
    path = f"/v1/channels/{ch}/mall/orders"
    assert (await post(platform.http, key, path, order_body("A1", sku))).status_code == 201
    assert (await post(platform.http, other, path, order_body("A2", sku))).status_code == 201
    async with platform.pg.connection() as conn:
        await conn.execute("UPDATE credentials SET revoked = true WHERE key_id = $1", key.key_id)
    assert (await post(platform.http, key, path, order_body("A3", sku))).status_code == 401
    async with platform.pg.connection() as conn:
        await conn.execute("UPDATE channels SET status = 'suspended' WHERE channel_id = $1", ch)
    suspended = await post(platform.http, other, path, order_body("A4", sku))
    assert suspended.status_code == 403
    assert suspended.json()["error"]["code"] == "PERMISSION_DENIED"
    # Neither refused request took an order; both are kept with their answer.
    listed = await platform.gateway.ListPayloads(gw_svc.ListPayloadsRequest(channel_id=ch))
    assert sorted(p.http_status for p in listed.payloads) == [201, 201, 401, 403]


async def test_two_replicas_leasing_tokens_stay_within_the_shared_limit(
    platform: Platform, unique: str
) -> None:
    """Two replicas' limiters draw on one bucket in PostgreSQL, in chunks; over a simulated
    1.2 s of steady demand (1 ms apart, both replicas) they admit no more than burst +
    rate x elapsed, and not much less."""
    assert platform.pg is not None
    rate, burst = 200, 200
    assert rate_limit.lease_size(rate, burst) > 1  # leases, not one round trip per request
    replicas = [RateLimiter(platform.pg), RateLimiter(platform.pg)]
    bucket = f"test:{unique}"
    start = time.time()
    admitted = 0
    refused: list[int] = []
    steps = 1200
    for step in range(steps):
        now = start + step / 1000
        for limiter in replicas:
            try:
                await limiter.charge(bucket, rate, burst, now)
                admitted += 1
            except RateLimited as exc:
                refused.append(exc.retry_after)
    elapsed = (steps - 1) / 1000
    assert admitted <= burst + rate * elapsed
    # Leased tokens a replica could not spend before the other drained the bucket are the
    # only loss: at most one lease per replica per lease lifetime.
    assert admitted >= burst + rate * elapsed - 2 * rate_limit.lease_size(rate, burst) * 2
    assert refused and all(r >= 1 for r in refused)


async def test_a_burst_far_above_capacity_gets_only_explicit_answers_and_orders_once(
    platform: Platform, unique: str
) -> None:
    """A replica allowed one capture at a time, with a 10 ms wait for it: 30 orders at once
    are answered 201 or 503 + Retry-After (never a time-out); retried until accepted, each
    exists exactly once at the order service."""
    assert platform.gateway_settings is not None
    ch = f"MALL-{unique}"
    key = await platform.channel(ch, "web_mall")
    sku, _ = await platform.stocked(ch, unique, quantity=500)
    port = free_port()
    settings = dataclasses.replace(
        platform.gateway_settings,
        gateway_http_port=port,
        extra={
            **platform.gateway_settings.extra,
            "OMNI_GATEWAY_MAX_INFLIGHT_ORDERS": "1",
            "OMNI_GATEWAY_ADMISSION_WAIT_SECONDS": "0.01",
        },
    )
    path = f"/v1/channels/{ch}/mall/orders"
    async with (
        running_service(settings),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        for _ in range(100):
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        numbers = [f"F{i}" for i in range(30)]
        answers = await asyncio.gather(
            *(post(http, key, path, order_body(n, sku)) for n in numbers)
        )
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {201, 503}, statuses
        assert statuses[503] > 0, statuses
        for answer in answers:
            if answer.status_code == 503:
                assert int(answer.headers["retry-after"]) >= 1
                assert answer.json()["error"]["code"] == "UNAVAILABLE"
        accepted = {
            n: a.json()["order_id"]
            for n, a in zip(numbers, answers, strict=True)
            if a.status_code == 201
        }
        for _ in range(100):
            pending = [n for n in numbers if n not in accepted]
            if not pending:
                break
            for n in pending:
                again = await post(http, key, path, order_body(n, sku))
                assert again.status_code in (200, 201, 503), again.text
                if again.status_code != 503:
                    accepted[n] = again.json()["order_id"]
    assert set(accepted) == set(numbers)
    listed = await platform.order.ListOrders(
        ord_svc.ListOrdersRequest(channel_id=ch, page_size=100)
    )
    at_order = Counter(o.channel_order_id for o in listed.orders)
    assert at_order == Counter(numbers)
    assert {o.channel_order_id: o.order_id for o in listed.orders} == accepted
