"""The catalog service as a process: its servicer, migrations and the promotion clock."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
from omni.catalog.v1 import catalog_service_pb2_grpc

from libs.config import ConfigError, Settings
from libs.service_app import Runtime, ServiceDefinition
from services.catalog.entrypoints.grpc_servicer import CatalogServicer
from services.catalog.service_layer import promotion_clock

# How often the promotion clock looks for windows that opened or closed; an event leaves at
# most this long after its edge.
PROMOTION_CLOCK_VAR = "OMNI_CATALOG_PROMOTION_CLOCK_SECONDS"
DEFAULT_PROMOTION_CLOCK_SECONDS = 1.0


def promotion_clock_seconds(settings: Settings) -> float:
    raw = settings.extra.get(PROMOTION_CLOCK_VAR, "")
    try:
        seconds = float(raw) if raw else DEFAULT_PROMOTION_CLOCK_SECONDS
    except ValueError as exc:
        raise ConfigError(f"{PROMOTION_CLOCK_VAR} must be a number, got {raw!r}") from exc
    if seconds <= 0:
        raise ConfigError(f"{PROMOTION_CLOCK_VAR} must be positive")
    return seconds


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server(
        CatalogServicer(runtime.uow_factory), server
    )


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    return [
        promotion_clock.run_forever(runtime.uow_factory, promotion_clock_seconds(runtime.settings))
    ]


definition = ServiceDefinition(
    name="catalog",
    grpc_service_name="omni.catalog.v1.CatalogService",
    migrations_dir=Path(__file__).parent / "migrations",
    register=register,
    background=background,
)
