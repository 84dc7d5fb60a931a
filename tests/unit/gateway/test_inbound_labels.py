"""The labels of omni_gateway_inbound_payloads_total (pure)."""

from __future__ import annotations

from services.gateway.entrypoints.consumers import status_subject
from services.gateway.service_layer.inbound import kind_of_route, result_for


def test_result_labels() -> None:
    assert result_for(201, False) == "accepted"
    assert result_for(200, True) == "duplicate"
    assert result_for(422, False) == "rejected"
    assert result_for(401, True) == "rejected"
    assert result_for(503, False) == "failed"


def test_kind_of_a_route_without_an_authenticated_channel() -> None:
    assert kind_of_route("tmall.trades") == "marketplace"
    assert kind_of_route("pos.sales") == "store"
    assert kind_of_route("local-life.redemptions") == "local_life"
    assert kind_of_route("open.orders") == "unknown"
    assert kind_of_route("unknown") == "unknown"


def test_order_status_pushes_coalesce_per_fulfilment_or_return() -> None:
    assert status_subject("o-1") == "o-1"
    assert status_subject("o-1", "F1") != status_subject("o-1", "F2")
