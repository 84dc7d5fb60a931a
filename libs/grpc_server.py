"""One way to run a gRPC asyncio server: health, reflection, JSON logging with trace ids,
OpenTelemetry, Prometheus RPC metrics, domain errors mapped to status codes, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from libs.db import is_database_unavailable, is_retryable_conflict
from libs.errors import Aborted, DomainError, InvalidArgument, Unavailable
from libs.grpc_errors import to_status
from libs.metrics import RPC_DURATION, RPC_HANDLED
from libs.proto_input import reject_nul_strings

log = logging.getLogger(__name__)

_HEALTH_SERVICE = "grpc.health.v1.Health"


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Logs, counts and times every call, and turns domain errors into status codes."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if method.startswith(f"/{_HEALTH_SERVICE}/") or "ServerReflection" in method:
            return handler
        deserializer = _tolerant(handler.request_deserializer)
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

    def _wrap_unary(self, method: str, behavior: Any, *, streaming: bool) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            try:
                return await behavior(_checked(request, streaming), context)
            except DomainError as error:
                await self._abort(context, error)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as error:
                await self._abort_unexpected(context, method, error)
            finally:
                self._observe(method, context, started)

        return wrapped

    def _wrap_stream(self, method: str, behavior: Any, *, streaming: bool) -> Any:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for response in behavior(_checked(request, streaming), context):
                    yield response
            except DomainError as error:
                await self._abort(context, error)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as error:
                await self._abort_unexpected(context, method, error)
            finally:
                self._observe(method, context, started)

        return wrapped

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

    def _observe(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], started: float
    ) -> None:
        elapsed = time.perf_counter() - started
        code = context.code()
        code_name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        RPC_HANDLED.labels(self.service, method, code_name).inc()
        RPC_DURATION.labels(self.service, method).observe(elapsed)
        level = (
            logging.INFO
            if code_name in ("OK", "NOT_FOUND", "INVALID_ARGUMENT")
            else logging.WARNING
        )
        log.log(
            level,
            "rpc",
            extra={"rpc": method, "code": code_name, "duration_ms": round(elapsed * 1000, 2)},
        )


class _Undecodable:
    """Stands in for a request the message type could not parse (e.g. a string field that
    is not UTF-8), so the call answers INVALID_ARGUMENT instead of failing in the transport."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return _Undecodable(error)

    return deserialize


def _check_message(message: Any) -> Any:
    """Every request passes here before a servicer sees it."""
    if isinstance(message, _Undecodable):
        raise InvalidArgument.field(
            "request", "cannot be parsed (every string must be valid UTF-8)"
        )
    reject_nul_strings(message)
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
) -> GrpcServer:
    """Start a server with the service's servicers, health and reflection; SERVING once up."""
    server = grpc.aio.server(
        interceptors=[aio_server_interceptor(), ObservingInterceptor(service)],
        options=[("grpc.so_reuseport", 0)],
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
