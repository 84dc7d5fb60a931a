"""The order service as a process: servicer, migrations, the consumer of inventory's stock
events and the background task (recovery, expiry, unfillable queue)."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
from omni.order.v1 import order_service_pb2_grpc

from libs.service_app import ConsumerSpec, Runtime, ServiceDefinition
from services.order.adapters.catalog_client import CatalogClient
from services.order.adapters.inventory_client import InventoryClient
from services.order.entrypoints import inventory_events
from services.order.entrypoints.background import run_background
from services.order.entrypoints.grpc_servicer import OrderServicer
from services.order.service_layer.context import OrderConfig, OrderContext

_contexts: dict[int, OrderContext] = {}


def context(runtime: Runtime) -> OrderContext:
    """One context (and one inventory channel) per running process."""
    key = id(runtime)
    if key not in _contexts:
        _contexts[key] = OrderContext(
            runtime.pg,
            InventoryClient(runtime.settings),
            CatalogClient(runtime.settings),
            OrderConfig.from_settings(runtime.settings),
        )
    return _contexts[key]


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    order_service_pb2_grpc.add_OrderServiceServicer_to_server(
        OrderServicer(context(runtime)), server
    )


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
    return [ConsumerSpec("inventory-events", ["inventory"], inventory_events.SUBSCRIPTIONS)]


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    return [run_background(context(runtime))]


definition = ServiceDefinition(
    name="order",
    grpc_service_name="omni.order.v1.OrderService",
    migrations_dir=Path(__file__).parent / "migrations",
    register=register,
    consumers=consumers,
    background=background,
)
