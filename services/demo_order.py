"""``python -m services.demo_order``: what a web-mall adapter does, once, against a running
platform (`make run`): place a signed same-city order through the gateway's HTTP API for a
customer on Nanjing West Road, then read it back through the open API — routed to the
nearest store holding the stock, with its fulfilment order.

Every run places a new order; ``--retry`` sends the last one again to show it is accepted
once (answer 200 with ``"duplicate": true``)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import urllib.error
import urllib.request

import grpc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc

from libs.config import Settings
from libs.runner import REPO
from services.demo_data import MALL, DemoKey, demo_key
from services.gateway.domain import signatures


def signed(key: DemoKey, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    timestamp = int(time.time())
    nonce = secrets.token_hex(12)
    return {
        "content-type": "application/json",
        "x-omni-key": key.key_id,
        "x-omni-timestamp": str(timestamp),
        "x-omni-nonce": nonce,
        "x-omni-signature": signatures.sign(key.secret, method, path, timestamp, nonce, body),
    }


def send(base: str, key: DemoKey, method: str, path: str, payload: object = None) -> object:
    body = json.dumps(payload).encode() if payload is not None else b""
    request = urllib.request.Request(
        base + path,
        data=body or None,
        method=method,
        headers=signed(key, method, path, body),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            print(f"{method} {path} → {response.status}")
    except urllib.error.HTTPError as error:
        answer = json.loads(error.read())
        print(f"{method} {path} → {error.code}")
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return answer


def order(order_no: str) -> dict[str, object]:
    return {
        "order_no": order_no,
        "fulfilment": "same_city",
        "guest_contact": "+86 138 0013 8000",
        "delivery_address": {
            "province": "Shanghai",
            "city": "Shanghai",
            "district": "Jing'an",
            "street": "1 Nanjing W Rd",
            "latitude": 31.2290,
            "longitude": 121.4600,
        },
        "items": [{"sku_code": "DEMO-TEE-RED-M", "quantity": 1, "unit_price": 9900}],
        "total": 9900,
    }


async def main(argv: list[str]) -> int:
    settings = Settings.from_env("gateway")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        key = await demo_key(gw_grpc.GatewayServiceStub(channel), MALL)
    base = f"http://127.0.0.1:{settings.gateway_http_port}"
    state = REPO / settings.state_dir / "demo-last-order"
    if "--retry" in argv and state.exists():
        order_no = state.read_text().strip()
    else:
        order_no = f"DEMO-{int(time.time())}"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(order_no)
    send(base, key, "POST", f"/v1/channels/{MALL}/mall/orders", order(order_no))
    await asyncio.sleep(0.5)
    send(base, key, "GET", f"/open/v1/orders/{order_no}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
