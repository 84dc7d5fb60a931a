"""The inventory service as a process: servicer, migrations, consumer of catalog events and
the reservation sweeper."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
from omni.inventory.v1 import inventory_service_pb2_grpc

from libs.config import ConfigError
from libs.service_app import ConsumerSpec, Runtime, ServiceDefinition
from services.inventory.entrypoints import catalog_events
from services.inventory.entrypoints.grpc_servicer import InventoryServicer
from services.inventory.entrypoints.sweeper import run_sweeper
from services.inventory.service_layer.reservation_engine import ReservationEngine

SWEEP_INTERVAL_VAR = "OMNI_INVENTORY_SWEEP_INTERVAL_SECONDS"
SWEEP_BATCH_VAR = "OMNI_INVENTORY_SWEEP_BATCH"
HOLD_BATCH_VAR = "OMNI_INVENTORY_HOLD_BATCH"
HOLD_FLUSHES_VAR = "OMNI_INVENTORY_HOLD_FLUSHES"
HOLD_QUEUE_VAR = "OMNI_INVENTORY_HOLD_QUEUE"


def reservation_engine(runtime: Runtime) -> ReservationEngine:
    """The process's one engine for Reserve and ReserveBatch: at most OMNI_INVENTORY_HOLD_BATCH
    holds per transaction (default 100), OMNI_INVENTORY_HOLD_FLUSHES batches in flight
    (default 1), OMNI_INVENTORY_HOLD_QUEUE holds waiting before callers are turned away
    (default 5,000)."""
    extra = runtime.settings.extra
    try:
        max_batch = int(extra.get(HOLD_BATCH_VAR) or 100)
        flushes = int(extra.get(HOLD_FLUSHES_VAR) or 1)
        queue = int(extra.get(HOLD_QUEUE_VAR) or 5_000)
    except ValueError as exc:
        raise ConfigError(
            f"{HOLD_BATCH_VAR} / {HOLD_FLUSHES_VAR} / {HOLD_QUEUE_VAR} must be integers"
        ) from exc
    if max_batch < 1 or queue < 1 or not 1 <= flushes <= runtime.pg.max_size:
        raise ConfigError(
            f"{HOLD_BATCH_VAR} and {HOLD_QUEUE_VAR} must be at least 1 and "
            f"{HOLD_FLUSHES_VAR} 1..{runtime.pg.max_size}"
        )
    return ReservationEngine(runtime.pg, max_batch=max_batch, concurrency=flushes, max_queued=queue)


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    inventory_service_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(runtime.uow_factory, reservation_engine(runtime)), server
    )


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
    return [ConsumerSpec("catalog-events", ["catalog"], catalog_events.SUBSCRIPTIONS)]


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    extra = runtime.settings.extra
    try:
        interval = float(extra.get(SWEEP_INTERVAL_VAR) or 1.0)
        batch = int(extra.get(SWEEP_BATCH_VAR) or 100)
    except ValueError as exc:
        raise ConfigError(f"{SWEEP_INTERVAL_VAR} / {SWEEP_BATCH_VAR} must be numbers") from exc
    return [run_sweeper(runtime.uow_factory, interval, batch)]


definition = ServiceDefinition(
    name="inventory",
    grpc_service_name="omni.inventory.v1.InventoryService",
    migrations_dir=Path(__file__).parent / "migrations",
    register=register,
    consumers=consumers,
    background=background,
)
