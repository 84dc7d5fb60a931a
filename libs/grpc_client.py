"""One way to call a peer service: a deadline on every call, the trace context propagated
with a CLIENT span per call, and automatic retries only of calls a retry cannot apply twice.

Unary calls (every call between the services) are traced and given their deadline by a thin
wrapper around the channel's callables, not by client interceptors: grpc.aio runs an
intercepted call through an extra task and call object per interceptor, which cost more
CPU than the call itself (bench-results.md, "rpc overhead"). Streaming calls keep
OpenTelemetry's interceptors.

Retries: gRPC retries a call that never reached the peer (transparent retry), and, by the
channel's service config, retries UNAVAILABLE (the peer restarting, a lost connection, its
database gone for a moment) up to twice with a short backoff — but only for methods that a
second attempt cannot apply twice: requests carrying the platform's idempotency key
`request_id`, methods marked `idempotency_level` in the protos, and the standard reads
(`Get…`, `List…`). Retry throttling stops retries while most calls fail. RESOURCE_EXHAUSTED
(a full server) is never retried: the caller backs off.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from libs.config import Settings

Request = TypeVar("Request")
Response = TypeVar("Response")

RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# A token per failed call, a tenth back per success; retries stop below half: a peer that
# fails most calls is not sent two more of each.
RETRY_THROTTLING = {"maxTokens": 10, "tokenRatio": 0.1}
# gRPC's default grows to 120 s between reconnection attempts; a restarted peer is reached
# again within a second or two.
MAX_RECONNECT_BACKOFF_MS = 2000
_STANDARD_READS = ("Get", "List")


def peer_channel(settings: Settings, peer: str) -> grpc.aio.Channel:
    """A channel to ``peer`` (e.g. "inventory") at OMNI_<PEER>_ADDR."""
    return PeerChannel(
        settings.peer_addresses[peer],
        deadline_seconds=settings.rpc_deadline_seconds,
        service=peer_service(peer),
    )


def peer_service(peer: str) -> ServiceDescriptor:
    """The gRPC service a peer serves (omni.<peer>.v1.<Peer>Service)."""
    module = importlib.import_module(f"omni.{peer}.v1.{peer}_service_pb2")
    descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[
        f"{peer.capitalize()}Service"
    ]
    return descriptor


def retry_safe(method: MethodDescriptor) -> bool:
    """Whether a second attempt of the call cannot apply it twice."""
    if method.GetOptions().idempotency_level in (
        MethodOptions.NO_SIDE_EFFECTS,
        MethodOptions.IDEMPOTENT,
    ):
        return True
    if "request_id" in method.input_type.fields_by_name:
        return True
    return method.name.startswith(_STANDARD_READS)


def service_config(service: ServiceDescriptor) -> dict[str, Any]:
    """The channel's service config: UNAVAILABLE retried for the retry-safe methods only."""
    safe = [
        {"service": service.full_name, "method": m.name} for m in service.methods if retry_safe(m)
    ]
    config: dict[str, Any] = {"retryThrottling": RETRY_THROTTLING}
    if safe:
        config["methodConfig"] = [{"name": safe, "retryPolicy": RETRY_POLICY}]
    return config


def channel_options(service: ServiceDescriptor | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 1),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]
    if service is not None:
        options.append(("grpc.service_config", json.dumps(service_config(service))))
    return options


class PeerChannel(grpc.aio.Channel):
    """A grpc.aio channel whose unary calls get a default deadline and a CLIENT span."""

    def __init__(
        self, target: str, *, deadline_seconds: float, service: ServiceDescriptor | None = None
    ) -> None:
        streaming = [
            interceptor
            for interceptor in aio_client_interceptors()
            if not isinstance(interceptor, grpc.aio.UnaryUnaryClientInterceptor)
        ]
        self._channel = grpc.aio.insecure_channel(
            target, options=channel_options(service), interceptors=streaming
        )
        self._deadline_seconds = deadline_seconds
        self._tracer = trace.get_tracer(__name__)

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        inner = self._channel.unary_unary(  # type: ignore[call-arg]
            method,
            request_serializer,
            response_deserializer,
            _registered_method=_registered_method,
        )
        return _TracedUnaryUnary(inner, method, self._deadline_seconds, self._tracer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        return self._channel.unary_stream(  # type: ignore[call-arg]
            method, request_serializer, response_deserializer, _registered_method=_registered_method
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        return self._channel.stream_unary(  # type: ignore[call-arg]
            method, request_serializer, response_deserializer, _registered_method=_registered_method
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        return self._channel.stream_stream(  # type: ignore[call-arg]
            method, request_serializer, response_deserializer, _registered_method=_registered_method
        )

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> PeerChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close(None)


class _TracedUnaryUnary(grpc.aio.UnaryUnaryMultiCallable[Request, Response]):
    """Calls one method: deadline, CLIENT span, `traceparent` in the metadata."""

    __slots__ = ("_attributes", "_deadline_seconds", "_inner", "_name", "_tracer")

    def __init__(
        self,
        inner: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        name: str,
        deadline_seconds: float,
        tracer: Tracer,
    ) -> None:
        self._inner = inner
        self._name = name
        self._deadline_seconds = deadline_seconds
        self._tracer = tracer
        service, _, method = name.lstrip("/").partition("/")
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

    def __call__(
        self,
        request: Request,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryUnaryCall[Request, Response]:
        span = self._tracer.start_span(
            self._name, kind=SpanKind.CLIENT, attributes=self._attributes
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        call = self._inner(
            request,
            timeout=self._deadline_seconds if timeout is None else timeout,
            metadata=(*metadata, *carrier.items()) if metadata else tuple(carrier.items()),
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )
        return _TracedCall(call, span)


class _TracedCall(grpc.aio.UnaryUnaryCall[Request, Response], Generic[Request, Response]):
    """The call, whose span ends with the outcome when the call is awaited."""

    __slots__ = ("_call", "_span")

    def __init__(self, call: grpc.aio.UnaryUnaryCall[Request, Response], span: Span) -> None:
        self._call = call
        self._span: Span | None = span

    def __await__(self) -> Generator[None, None, Response]:
        try:
            response = yield from self._call.__await__()
        except grpc.aio.AioRpcError as error:
            self._end(error.code(), error.details())
            raise
        except asyncio.CancelledError:
            self._end(grpc.StatusCode.CANCELLED, "cancelled by the caller")
            raise
        self._end(grpc.StatusCode.OK, None)
        return response

    def _end(self, code: grpc.StatusCode, details: str | None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, details or code.name))
        span.end()

    def cancelled(self) -> bool:
        return self._call.cancelled()

    def done(self) -> bool:
        return self._call.done()

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def cancel(self) -> bool:
        return self._call.cancel()

    def add_done_callback(self, callback: Any) -> None:
        self._call.add_done_callback(callback)

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return await self._call.code()

    async def details(self) -> str:
        return await self._call.details()

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()
