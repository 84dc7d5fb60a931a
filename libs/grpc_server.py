"""One way to run a gRPC asyncio server: health, reflection, JSON logging with trace ids,
OpenTelemetry, Prometheus RPC metrics, domain errors mapped to status codes, graceful stop,
and a bound on concurrent calls (back-pressure: RESOURCE_EXHAUSTED at once, not a deadline).

Every call of a service passes one interceptor, and what it needs per method (the wrapped
handler, the span's attributes, the metric children) is built on the method's first call,
so a call pays only for its own span, two metric updates and its checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import Token
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from libs.config import DEFAULT_GRPC_MAX_CONCURRENT_RPCS
from libs.db import is_database_unavailable, is_retryable_conflict
from libs.errors import Aborted, DomainError, InvalidArgument, Unavailable
from libs.grpc_errors import to_status
from libs.metrics import RPC_DURATION, RPC_HANDLED
from libs.proto_input import reject_nul_strings

log = logging.getLogger(__name__)

_HEALTH_SERVICE = "grpc.health.v1.Health"
# Outcomes that are the caller's business (its input, what it asked about, out of stock, a
# duplicate): logged at DEBUG (INFO when slow) — in a flash sale every sold-out order is a
# FAILED_PRECONDITION, a line each would be noise at volume. Any other code is logged at
# WARNING.
_CALLER_OUTCOMES = frozenset(
    {"OK", "NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS"}
)
# Codes that make a server span's status ERROR (OpenTelemetry's gRPC conventions); the others
# are answers, recorded as rpc.grpc.status_code only.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class _Method:
    """What every call of one method shares: span attributes and metric children."""

    __slots__ = ("attributes", "duration", "handled", "name", "service")

    def __init__(self, service: str, name: str) -> None:
        self.service = service
        self.name = name
        rpc_service, _, rpc_method = name.lstrip("/").partition("/")
        self.attributes = {
            "rpc.system": "grpc",
            "rpc.service": rpc_service,
            "rpc.method": rpc_method,
        }
        self.duration = RPC_DURATION.labels(service, name)
        self.handled: dict[str, Any] = {}

    def count(self, code_name: str) -> None:
        child = self.handled.get(code_name)
        if child is None:
            child = self.handled[code_name] = RPC_HANDLED.labels(self.service, self.name, code_name)
        child.inc()


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Traces, logs, counts and times every call, checks its request, and turns domain errors
    into status codes.

    The span is the call's SERVER span (one per RPC), a child of the caller's trace context
    from the `traceparent` metadata. A successful call is logged at DEBUG, or at INFO when it
    took ``slow_rpc_seconds`` or more; a failed one at WARNING; each line with the trace id.
    """

    def __init__(self, service: str, *, slow_rpc_seconds: float = 1.0) -> None:
        self.service = service
        self.slow_rpc_seconds = slow_rpc_seconds
        self._tracer = trace.get_tracer(__name__)
        # method → (the servicer's handler, the handler that wraps it)
        self._handlers: dict[str, tuple[_Handler, _Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._handlers[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, name: str, handler: _Handler) -> _Handler:
        if name.startswith(f"/{_HEALTH_SERVICE}/") or "ServerReflection" in name:
            return handler
        method = _Method(self.service, name)
        deserializer = _checking(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary, streaming=False),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary, streaming=True),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, streaming=False),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream, streaming=True),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, method: _Method, behavior: Any, *, streaming: bool) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            span, token = self._enter(method, context)
            cancelled = False
            try:
                return await behavior(_checked(request, streaming), context)
            except DomainError as error:
                await self._abort(context, error)
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                cancelled = True
                raise
            except Exception as error:
                span.record_exception(error)
                await self._abort_unexpected(context, method.name, error)
            finally:
                self._exit(method, context, started, span, token, cancelled)

        return wrapped

    def _wrap_stream(self, method: _Method, behavior: Any, *, streaming: bool) -> Any:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            span, token = self._enter(method, context)
            cancelled = False
            try:
                async for response in behavior(_checked(request, streaming), context):
                    yield response
            except DomainError as error:
                await self._abort(context, error)
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                cancelled = True
                raise
            except Exception as error:
                span.record_exception(error)
                await self._abort_unexpected(context, method.name, error)
            finally:
                self._exit(method, context, started, span, token, cancelled)

        return wrapped

    def _enter(
        self, method: _Method, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[Span, Token[otel_context.Context]]:
        """Start the call's span under the caller's trace context and make it current."""
        metadata = context.invocation_metadata()
        parent = propagate.extract(dict(metadata)) if metadata else None
        span = self._tracer.start_span(
            method.name, context=parent, kind=SpanKind.SERVER, attributes=method.attributes
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    def _exit(
        self,
        method: _Method,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
        span: Span,
        token: Token[otel_context.Context],
        cancelled: bool,
    ) -> None:
        elapsed = time.perf_counter() - started
        code = grpc.StatusCode.CANCELLED if cancelled else context.code()
        if not isinstance(code, grpc.StatusCode):
            code = grpc.StatusCode.OK
        code_name = code.name
        method.count(code_name)
        method.duration.observe(elapsed)
        if code_name not in _CALLER_OUTCOMES:
            level = logging.WARNING
        elif elapsed >= self.slow_rpc_seconds:
            level = logging.INFO
        else:
            level = logging.DEBUG
        # Still inside the span's context, so the line carries its trace id.
        if log.isEnabledFor(level):
            log.log(
                level,
                "rpc",
                extra={
                    "rpc": method.name,
                    "code": code_name,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in _SERVER_FAULTS:
                span.set_status(Status(StatusCode.ERROR, context.details() or code_name))
        otel_context.detach(token)
        span.end()

    async def _abort_unexpected(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str, error: Exception
    ) -> None:
        if is_retryable_conflict(error):
            # A deadlock or serialization failure: nothing was committed, a retry may succeed.
            log.warning("concurrency conflict in RPC", extra={"rpc": method})
            await self._abort(context, Aborted("concurrent update conflict; retry the call"))
        if is_database_unavailable(error):
            log.warning("database connection lost in RPC", extra={"rpc": method})
            await self._abort(context, Unavailable("database connection lost; retry the call"))
        log.exception("unhandled error in RPC", extra={"rpc": method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    async def _abort(self, context: grpc.aio.ServicerContext[Any, Any], error: DomainError) -> None:
        status = to_status(error, domain=f"omni.{self.service}")
        await context.abort(status.code, status.details, status.trailing_metadata)


class _Refused:
    """Stands in for a request refused while it was deserialized (it cannot be parsed, e.g. a
    string field that is not UTF-8, or a string holds a NUL), so the call answers
    INVALID_ARGUMENT naming the field instead of failing in the transport."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def _checking(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            message = deserializer(data)
        except Exception:
            return _Refused(
                InvalidArgument.field(
                    "request", "cannot be parsed (every string must be valid UTF-8)"
                )
            )
        # A NUL character in any string (or map key) is a 0x00 byte in the wire data: a
        # request without one needs no walk over its fields.
        if b"\x00" in data:
            try:
                reject_nul_strings(message)
            except InvalidArgument as error:
                return _Refused(error)
        return message

    return deserialize


def _check_message(message: Any) -> Any:
    """Every request passes here before a servicer sees it."""
    if type(message) is _Refused:
        raise message.error
    return message


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for message in requests:
        yield _check_message(message)


def _checked(request: Any, streaming: bool) -> Any:
    return _checked_stream(request) if streaming else _check_message(request)


class GrpcServer:
    """A started server with its health servicer; ``stop()`` drains and stops it gracefully."""

    def __init__(self, server: grpc.aio.Server, health_servicer: Any, port: int) -> None:
        self.server = server
        self.health = health_servicer
        self.port = port

    async def stop(self, drain_seconds: float, grace_seconds: float) -> None:
        # NOT_SERVING first, so load balancers stop sending; then in-flight calls finish.
        await self.health.enter_graceful_shutdown()
        if drain_seconds > 0:
            await asyncio.sleep(drain_seconds)
        await self.server.stop(grace_seconds)


async def start_grpc_server(
    *,
    service: str,
    service_names: Iterable[str],
    register: Callable[[grpc.aio.Server], None],
    host: str,
    port: int,
    max_concurrent_rpcs: int = DEFAULT_GRPC_MAX_CONCURRENT_RPCS,
    slow_rpc_seconds: float = 1.0,
) -> GrpcServer:
    """Start a server with the service's servicers, health and reflection; SERVING once up.

    Beyond ``max_concurrent_rpcs`` calls in progress, gRPC answers the next one
    RESOURCE_EXHAUSTED before any of our code runs: an explicit, immediate refusal the
    caller can back off from, instead of a queue that ends in its deadline. Health checks
    count too, so a probe fails only while the server is full.
    """
    server = grpc.aio.server(
        interceptors=[ObservingInterceptor(service, slow_rpc_seconds=slow_rpc_seconds)],
        options=[("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection([*names, _HEALTH_SERVICE, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, health_servicer, bound)
