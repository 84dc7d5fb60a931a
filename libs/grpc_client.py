"""One way to call a peer service: trace context propagated and a deadline on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from libs.config import Settings


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives every unary call a deadline unless the caller chose one."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if client_call_details.timeout is None:
            client_call_details = grpc.aio.ClientCallDetails(
                method=client_call_details.method,
                timeout=self.seconds,
                metadata=client_call_details.metadata,
                credentials=client_call_details.credentials,
                wait_for_ready=client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)


def peer_channel(settings: Settings, peer: str) -> grpc.aio.Channel:
    """A channel to ``peer`` (e.g. "inventory") at OMNI_<PEER>_ADDR."""
    return grpc.aio.insecure_channel(
        settings.peer_addresses[peer],
        interceptors=[*aio_client_interceptors(), DefaultDeadline(settings.rpc_deadline_seconds)],
    )
