"""OpenTelemetry tracing: one provider per process, exported over OTLP or to a JSON-lines file,
and the trace context carried through Kafka record headers.

What a span costs decides what is traced (bench-results.md, "rpc overhead"):
- One span per RPC (server and client, libs/grpc_server.py and libs/grpc_client.py), per
  relayed or consumed event and per channel push. Spans per SQL statement only with
  OMNI_TRACE_SQL=true: a span per statement costs about 30 % of a hot path.
- Exported spans are head-sampled: a new trace is recorded with probability
  OMNI_TRACE_SAMPLE_RATIO (default 1.0), and every later span of it follows that decision
  (ParentBased), in this process and, through the `traceparent` flags, in every other.
- With no exporter configured (neither OTEL_EXPORTER_OTLP_ENDPOINT nor OMNI_TRACE_FILE)
  nothing is recorded: new traces are not sampled. Their spans still get trace and span ids
  and still propagate, so log lines carry a trace id and a caller's trace continues here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased

from libs.config import Settings

KafkaHeaders = list[tuple[str, bytes]]

_configured = False
_lock = threading.Lock()


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (several processes may share it)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            if ctx is None:
                continue
            lines.append(
                orjson.dumps(
                    {
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_span_id": format(span.parent.span_id, "016x")
                        if span.parent
                        else None,
                        "name": span.name,
                        "kind": span.kind.name,
                        "service": span.resource.attributes.get("service.name"),
                        "start_ns": span.start_time,
                        "end_ns": span.end_time,
                        "status": span.status.status_code.name,
                        "attributes": dict(span.attributes or {}),
                    },
                    default=str,
                )
            )
        if lines:
            # One write per batch: O_APPEND keeps whole lines when processes share the file.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"\n".join(lines) + b"\n")
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def sampler_for(settings: Settings) -> Sampler:
    """Record what will be exported (see the module's docstring)."""
    if not (settings.otlp_endpoint or settings.trace_file):
        return ParentBased(ALWAYS_OFF)
    return ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))


def setup_tracing(settings: Settings) -> None:
    """Install the process-wide tracer provider once (the first service in a process names it
    and decides sampling and SQL spans for the whole process)."""
    global _configured
    with _lock:
        if _configured:
            return
        provider = TracerProvider(
            resource=Resource.create({"service.name": f"omni-{settings.service}"}),
            sampler=sampler_for(settings),
        )
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
            )
        if settings.trace_file:
            provider.add_span_processor(
                BatchSpanProcessor(
                    JsonLinesSpanExporter(settings.trace_file), schedule_delay_millis=200
                )
            )
        trace.set_tracer_provider(provider)
        if settings.trace_sql:
            instrument_sql()
        _configured = True


def instrument_sql() -> None:
    """A CLIENT span per statement on every asyncpg connection of the process (SQLAlchemy's
    and libs/pg.py's alike: the instrumentation patches the driver)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


# Polled by load balancers and the live status page: spans of them would only be noise.
# (Regexes searched in the request URL.)
UNTRACED_HTTP_PATHS = (r"/healthz(\?|$)", r"/status(\.json)?(\?|$)", r"/metrics(\?|$)")


def instrument_http_app(app: Any) -> None:
    """Give every request to a FastAPI app a SERVER span (W3C trace context from the request
    headers, if any) under the process's tracer provider, so the gRPC calls and database
    work a request causes join one trace with it."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=trace.get_tracer_provider(),
        excluded_urls=",".join(UNTRACED_HTTP_PATHS),
        # One span per request: the ASGI receive/send steps add nothing for an SRE.
        exclude_spans=["receive", "send"],
    )


def flush_tracing() -> None:
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush()


def inject_context() -> dict[str, str]:
    """The current trace context as a plain mapping (stored with an outbox row)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_mapping(carrier: dict[str, str]) -> otel_context.Context:
    return propagate.extract(carrier)


def headers_to_mapping(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {key: value.decode("utf-8", "replace") for key, value in headers or ()}


def mapping_to_headers(carrier: dict[str, str]) -> KafkaHeaders:
    return [(key, value.encode()) for key, value in carrier.items()]
