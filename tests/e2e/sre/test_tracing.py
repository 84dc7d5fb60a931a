"""One trace follows an order from the gateway's HTTP request through order and inventory,
the outbox relays, Kafka and every consumer that reacts, read back from the spans the six
processes export (OMNI_TRACE_FILE, JSON lines)."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc

from libs.testing.services import eventually
from tests.e2e.sre.harness import Platform
from tests.integration.gateway.conftest import Platform as Shop
from tests.integration.gateway.conftest import rid

Span = dict[str, Any]
COMPLETED = "omni.order.v1.OrderCompletedEvent"


def _is(service: str, kind: str, **attributes: str) -> Callable[[Span], bool]:
    def matches(span: Span) -> bool:
        return (
            span["service"] == f"omni-{service}"
            and span["kind"] == kind
            and all(span["attributes"].get(k) == v for k, v in attributes.items())
        )

    return matches


def _rpc(service: str, kind: str, method: str) -> Callable[[Span], bool]:
    def matches(span: Span) -> bool:
        return _is(service, kind)(span) and span["name"].endswith(f"/{method}")

    return matches


# What one store sale must leave in its trace, and how to recognise each part.
EXPECTED: dict[str, Callable[[Span], bool]] = {
    "gateway HTTP server": lambda s: _is("gateway", "SERVER")(s) and s["name"].startswith("POST "),
    "gateway → order CaptureOrder": _rpc("gateway", "CLIENT", "CaptureOrder"),
    "order CaptureOrder": _rpc("order", "SERVER", "CaptureOrder"),
    # The sale is held (and confirmed) whole at the store in one batched hold.
    "order → inventory ReserveBatch": _rpc("order", "CLIENT", "ReserveBatch"),
    "inventory ReserveBatch": _rpc("inventory", "SERVER", "ReserveBatch"),
    "order relay publishes OrderCompleted": _is(
        "order", "PRODUCER", **{"messaging.message.type": COMPLETED}
    ),
    "inventory relay publishes StockChanged": _is(
        "inventory", "PRODUCER", **{"messaging.message.type": "omni.inventory.v1.StockChangedEvent"}
    ),
    "member consumer": _is("member", "CONSUMER", **{"messaging.message.type": COMPLETED}),
    "distribution consumer": _is(
        "distribution", "CONSUMER", **{"messaging.message.type": COMPLETED}
    ),
    "gateway consumer": _is("gateway", "CONSUMER", **{"messaging.message.type": COMPLETED}),
    "gateway push to the channel": lambda s: (
        s["service"] == "omni-gateway" and s["name"] == "push order_status"
    ),
}


def phone() -> str:
    return "139" + "".join(random.choices(string.digits, k=8))


def http_root(spans: list[Span], path: str) -> Span:
    roots = [
        s
        for s in spans
        if _is("gateway", "SERVER")(s) and any(path in str(v) for v in s["attributes"].values())
    ]
    assert len(roots) == 1, f"{len(roots)} HTTP server spans for {path}"
    return roots[0]


async def test_one_trace_follows_a_store_sale_through_every_service(
    platform: Platform, shop: Shop, unique: str
) -> None:
    channel = f"POS-TR-{unique}"
    key = await shop.channel(channel, "pos", push=True)
    store = f"TR-{unique}"
    await shop.location(store, [channel])
    sku = f"TR-{unique}-A"
    await shop.sku(sku)
    await shop.tracked(sku)
    await shop.receive(store, sku, 5)
    joined = await shop.post(
        key,
        f"/v1/channels/{channel}/pos/member-sign-ups",
        {"phone": phone(), "store_id": store, "guide_staff_id": f"G-{unique}"},
    )
    assert joined.status_code == 201, joined.text
    path = f"/v1/channels/{channel}/pos/sales"
    sale = {
        "sale_id": f"TR{unique}",
        "store_id": store,
        "staff_id": f"G-{unique}",
        "member_id": joined.json()["member_id"],
        "lines": [{"sku_code": sku, "quantity": 1, "unit_price": 9900}],
        "total": 9900,
    }
    sold = await shop.post(key, path, sale)
    assert sold.status_code == 201, sold.text

    async def whole_trace() -> list[Span]:
        spans = platform.spans()
        root = http_root(spans, path)
        trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
        missing = [name for name, found in EXPECTED.items() if not any(map(found, trace))]
        assert not missing, f"missing from trace {root['trace_id']}: {missing}"
        # One trace, not a forest: the HTTP request is its only root, and every other span's
        # parent is in it. A span is written when it ends, so a parent can come after its
        # children: wait for it too.
        ids = {s["span_id"] for s in trace}
        roots = [s["name"] for s in trace if s["parent_span_id"] is None]
        assert roots == [root["name"]], roots
        orphans = [s["name"] for s in trace if s["parent_span_id"] not in (None, *ids)]
        assert not orphans, f"parents not (yet) in the trace: {orphans}"
        return trace

    await eventually(whole_trace, timeout=60, interval=0.5)


async def test_a_marketplace_trade_is_one_trace_not_one_per_grpc_call(
    platform: Platform, shop: Shop, unique: str
) -> None:
    """The gateway resolves the marketplace's SKU ids at catalog and then captures the order:
    both calls are children of the one HTTP request."""
    channel = f"TM-TR-{unique}"
    key = await shop.channel(channel, "tmall")
    store = f"TT-{unique}"
    await shop.location(store, [channel])
    sku = f"TT-{unique}-A"
    await shop.sku(sku)
    await shop.tracked(sku)
    await shop.receive(store, sku, 3)
    await shop.catalog.MapChannelSkus(
        cat_svc.MapChannelSkusRequest(
            request_id=rid(),
            channel_id=channel,
            mappings=[
                cat.ChannelSkuMapping(channel_id=channel, sku_code=sku, external_sku_id="77")
            ],
        )
    )
    path = f"/v1/channels/{channel}/tmall/trades"
    trade = {
        "tid": f"T{unique}",
        "receiver_state": "Shanghai",
        "receiver_city": "Shanghai",
        "receiver_address": "1 Huaihai Rd",
        "payment": "99.00",
        "orders": [
            {"oid": f"T{unique}1", "num_iid": "6400", "sku_id": "77", "num": 1, "price": "99.00"}
        ],
    }
    answer = await shop.post_marketplace("tmall", key, path, trade)
    assert answer.status_code == 201, answer.text

    async def one_trace() -> None:
        spans = platform.spans()
        root = http_root(spans, path)
        trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
        assert any(map(_rpc("gateway", "CLIENT", "ResolveChannelSkus"), trace))
        assert any(map(_rpc("order", "SERVER", "CaptureOrder"), trace))
        assert [s for s in trace if s["parent_span_id"] is None] == [root]

    await eventually(one_trace, timeout=30, interval=0.5)
