"""The member service as a process: servicer, migrations, consumer of order events, and the
purge of spent member codes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from omni.member.v1 import member_service_pb2_grpc

from libs.service_app import ConsumerSpec, Runtime, ServiceDefinition
from libs.unit_of_work import UnitOfWorkFactory
from services.member.config import MemberConfig
from services.member.entrypoints import order_events
from services.member.entrypoints.grpc_servicer import MemberServicer
from services.member.service_layer.member_codes import purge_spent

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 60.0


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    member_service_pb2_grpc.add_MemberServiceServicer_to_server(
        MemberServicer(runtime.uow_factory, MemberConfig.from_settings(runtime.settings)), server
    )


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
    return [ConsumerSpec("order-events", ["order"], order_events.SUBSCRIPTIONS)]


async def purge_spent_codes_forever(uow_factory: UnitOfWorkFactory) -> None:
    """Spent member-code ids are only needed until the codes expire."""
    while True:
        try:
            async with uow_factory() as uow:
                await purge_spent(uow, datetime.now(UTC))
                await uow.commit()
        except Exception:  # a failed purge is retried next round; it must not stop the loop
            log.warning("purging spent member codes failed", exc_info=True)
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    return [purge_spent_codes_forever(runtime.uow_factory)]


definition = ServiceDefinition(
    name="member",
    grpc_service_name="omni.member.v1.MemberService",
    migrations_dir=Path(__file__).parent / "migrations",
    register=register,
    consumers=consumers,
    background=background,
)
