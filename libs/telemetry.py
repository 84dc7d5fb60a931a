"""OpenTelemetry tracing: one provider per process, exported over OTLP or to a JSON-lines file,
and the trace context carried through Kafka record headers."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

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
                json.dumps(
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
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for line in lines:
                    os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def setup_tracing(settings: Settings) -> None:
    """Install the process-wide tracer provider once (the first service in a process names it)."""
    global _configured
    with _lock:
        if _configured:
            return
        provider = TracerProvider(
            resource=Resource.create({"service.name": f"omni-{settings.service}"})
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
        _configured = True


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
