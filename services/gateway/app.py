"""The gateway service as a process: gRPC GatewayService, the HTTP API for channels, the
channel-sync consumer and the pusher."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
from omni.gateway.v1 import gateway_service_pb2_grpc

from libs.service_app import ConsumerSpec, Runtime, ServiceDefinition
from services.gateway.entrypoints.consumers import consumer_specs
from services.gateway.entrypoints.grpc_servicer import GatewayServicer
from services.gateway.entrypoints.http_app import serve_http
from services.gateway.service_layer.inbound import UNAUTHENTICATED_TTL_SECONDS, run_payload_purger
from services.gateway.service_layer.ingest import Gateway, make_gateway
from services.gateway.service_layer.outbound import PushSettings, run_lag_monitor, run_pusher
from services.gateway.service_layer.security import run_nonce_purger

# One Gateway (peers' channels, database) per running process, shared by the HTTP side,
# the servicer and the pusher.
_GATEWAYS: dict[int, Gateway] = {}


def gateway_for(runtime: Runtime) -> Gateway:
    key = id(runtime)
    if key not in _GATEWAYS:
        _GATEWAYS[key] = make_gateway(runtime)
    return _GATEWAYS[key]


def push_settings(runtime: Runtime) -> PushSettings:
    """OMNI_GATEWAY_PUSH_BACKOFF_SECONDS, OMNI_GATEWAY_PUSH_MAX_ATTEMPTS,
    OMNI_GATEWAY_PUSH_POLL_SECONDS, OMNI_GATEWAY_LAG_REFRESH_SECONDS (defaults in
    PushSettings)."""
    extra = runtime.settings.extra
    defaults = PushSettings()
    return PushSettings(
        backoff_seconds=float(
            extra.get("OMNI_GATEWAY_PUSH_BACKOFF_SECONDS", defaults.backoff_seconds)
        ),
        max_attempts=int(extra.get("OMNI_GATEWAY_PUSH_MAX_ATTEMPTS", defaults.max_attempts)),
        poll_seconds=float(extra.get("OMNI_GATEWAY_PUSH_POLL_SECONDS", defaults.poll_seconds)),
        lag_refresh_seconds=float(
            extra.get("OMNI_GATEWAY_LAG_REFRESH_SECONDS", defaults.lag_refresh_seconds)
        ),
    )


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server(
        GatewayServicer(gateway_for(runtime)), server
    )


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
    return consumer_specs()


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    gw = gateway_for(runtime)
    pushing = push_settings(runtime)
    return [
        serve_http(runtime, gw),
        run_pusher(runtime.pg, gw.peers, pushing),
        run_lag_monitor(runtime.pg, pushing.lag_refresh_seconds),
        run_nonce_purger(runtime.db),
        run_payload_purger(
            runtime.db,
            float(
                runtime.settings.extra.get(
                    "OMNI_GATEWAY_UNAUTHENTICATED_TTL_SECONDS", UNAUTHENTICATED_TTL_SECONDS
                )
            ),
        ),
    ]


definition = ServiceDefinition(
    name="gateway",
    grpc_service_name="omni.gateway.v1.GatewayService",
    migrations_dir=Path(__file__).parent / "migrations",
    register=register,
    consumers=consumers,
    background=background,
)
