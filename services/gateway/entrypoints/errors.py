"""One JSON error shape for every refusal the HTTP API answers:

    {"error": {"code": "INVALID_ARGUMENT", "message": "...",
               "field_violations": [{"field": "items[0].quantity", "description": "..."}]}}

Domain errors, request validation, signature failures, rate limits and peers' gRPC status
codes all end up here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import orjson
from pydantic import ValidationError

from libs.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from libs.grpc_errors import field_violations
from services.gateway.domain.signatures import SignatureError
from services.gateway.service_layer.admission import DEFAULT_RETRY_AFTER_SECONDS, Busy
from services.gateway.service_layer.security import ChannelSuspended, RateLimited

# A peer's gRPC status → our HTTP status (the codes a peer answers on purpose).
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
# A peer that cannot answer now (overloaded, down, too slow): the channel is told to come
# back, fast and explicitly — never left to time out.
GRPC_BUSY = frozenset(
    {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)

DOMAIN_TO_HTTP: dict[type[DomainError], tuple[int, str]] = {
    InvalidArgument: (422, "INVALID_ARGUMENT"),
    NotFound: (404, "NOT_FOUND"),
    AlreadyExists: (409, "ALREADY_EXISTS"),
    FailedPrecondition: (409, "FAILED_PRECONDITION"),
    Aborted: (409, "ABORTED"),
    PermissionDenied: (403, "PERMISSION_DENIED"),
    Unavailable: (503, "UNAVAILABLE"),
}


def body(code: str, message: str, violations: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "field_violations": [{"field": f, "description": d} for f, d in violations],
        }
    }


def field_path(loc: Sequence[int | str]) -> str:
    """("body", "items", 0, "quantity") → "items[0].quantity"; the location kind goes."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def validation_violations(errors: Sequence[Any]) -> list[tuple[str, str]]:
    return [(field_path(e.get("loc", ())), str(e.get("msg", "is invalid"))) for e in errors]


def from_exception(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """(HTTP status, JSON body, extra headers) for a known refusal; None for a bug."""
    if isinstance(exc, SignatureError):
        return 401, body("UNAUTHENTICATED", exc.reason), {}
    if isinstance(exc, RateLimited):
        return (
            429,
            body("RESOURCE_EXHAUSTED", f"rate limit exceeded; retry after {exc.retry_after}s"),
            {"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, Busy):
        return (
            503,
            body("UNAVAILABLE", str(exc)),
            {"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, ChannelSuspended):
        return 403, body("PERMISSION_DENIED", f"channel {exc.channel_id} is suspended"), {}
    if isinstance(exc, ValidationError):
        violations = validation_violations(exc.errors())
        return 422, body("INVALID_ARGUMENT", "the payload is invalid", violations), {}
    if isinstance(exc, DomainError):
        for kind in type(exc).__mro__:
            if kind in DOMAIN_TO_HTTP:
                status, code = DOMAIN_TO_HTTP[kind]
                violations = (
                    [(v.field, v.description) for v in exc.violations]
                    if isinstance(exc, InvalidArgument)
                    else []
                )
                retry = {"Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS)} if status == 503 else {}
                return status, body(code, exc.message, violations), retry
        return 409, body(exc.reason, exc.message), {}
    if isinstance(exc, grpc.aio.AioRpcError):
        if exc.code() in GRPC_BUSY:
            return (
                503,
                body("UNAVAILABLE", f"a platform service is busy ({exc.code().name}); retry"),
                {"Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS)},
            )
        mapped = GRPC_TO_HTTP.get(exc.code())
        if mapped is None:
            # A peer failed (INTERNAL, UNKNOWN...): not the caller's fault, not ours either.
            return 502, body("BAD_GATEWAY", f"a platform service failed: {exc.code().name}"), {}
        return mapped, body(exc.code().name, exc.details() or "", field_violations(exc)), {}
    return None


def dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()
