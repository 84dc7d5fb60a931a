"""The distribution service as a process: servicer, migrations, consumers of order and
member events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from omni.distribution.v1 import distribution_service_pb2_grpc

from libs.service_app import ConsumerSpec, Runtime, ServiceDefinition
from services.distribution.entrypoints import member_events, order_events
from services.distribution.entrypoints.grpc_servicer import DistributionServicer
from services.distribution.service_layer.access import DistributionConfig


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    distribution_service_pb2_grpc.add_DistributionServiceServicer_to_server(
        DistributionServicer(
            runtime.uow_factory, DistributionConfig.from_extra(runtime.settings.extra)
        ),
        server,
    )


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
    config = DistributionConfig.from_extra(runtime.settings.extra)
    return [
        ConsumerSpec("order-events", ["order"], order_events.subscriptions(config)),
        ConsumerSpec("member-events", ["member"], member_events.SUBSCRIPTIONS),
    ]


definition = ServiceDefinition(
    name="distribution",
    grpc_service_name="omni.distribution.v1.DistributionService",
    migrations_dir=Path(__file__).parent / "migrations",
    register=register,
    consumers=consumers,
)
