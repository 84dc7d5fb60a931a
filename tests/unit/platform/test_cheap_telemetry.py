"""Rules of the per-call mechanics that keep telemetry cheap: what is recorded when, which
event loop runs, which calls a peer channel may retry, and why a request without a 0x00 byte
needs no walk for NUL characters."""

from __future__ import annotations

import asyncio
import json

import pytest
import uvloop
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import example, given
from hypothesis import strategies as st
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.common.v1.money_pb2 import Money
from omni.order.v1 import order_pb2
from omni.order.v1 import order_service_pb2 as order
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from libs.config import (
    DEFAULT_GRPC_MAX_CONCURRENT_RPCS,
    EVENT_LOOPS,
    ConfigError,
    Settings,
)
from libs.errors import InvalidArgument
from libs.event_loop import LOOP_FACTORIES, run
from libs.grpc_client import peer_service, retry_safe, service_config
from libs.proto_input import reject_nul_strings
from libs.telemetry import sampler_for


def test_the_costly_telemetry_is_off_unless_switched_on():
    settings = Settings.from_env("order", {})
    assert settings.trace_sql is False
    assert settings.trace_sample_ratio == 1.0
    assert settings.slow_rpc_seconds == 1.0
    assert settings.event_loop == "uvloop"
    assert settings.grpc_max_concurrent_rpcs == DEFAULT_GRPC_MAX_CONCURRENT_RPCS
    switched = Settings.from_env(
        "order",
        {
            "OMNI_TRACE_SQL": "true",
            "OMNI_TRACE_SAMPLE_RATIO": "0.25",
            "OMNI_EVENT_LOOP": "asyncio",
            "OMNI_GRPC_MAX_CONCURRENT_RPCS": "64",
            "OMNI_SLOW_RPC_SECONDS": "0.2",
        },
    )
    assert (
        switched.trace_sql,
        switched.trace_sample_ratio,
        switched.event_loop,
        switched.grpc_max_concurrent_rpcs,
        switched.slow_rpc_seconds,
    ) == (True, 0.25, "asyncio", 64, 0.2)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("OMNI_TRACE_SQL", "perhaps"),
        ("OMNI_TRACE_SAMPLE_RATIO", "1.5"),
        ("OMNI_TRACE_SAMPLE_RATIO", "-0.1"),
        ("OMNI_EVENT_LOOP", "trio"),
        ("OMNI_GRPC_MAX_CONCURRENT_RPCS", "0"),
        ("OMNI_SLOW_RPC_SECONDS", "slow"),
    ],
)
def test_malformed_telemetry_settings_are_refused_with_the_variable_named(key, value):
    with pytest.raises(ConfigError, match=key):
        Settings.from_env("order", {key: value})


def test_every_event_loop_a_setting_names_exists_and_uvloop_is_the_default():
    assert set(LOOP_FACTORIES) == set(EVENT_LOOPS)

    async def loop_type() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert run(loop_type(), Settings.from_env("order", {}).event_loop) is uvloop.Loop
    assert issubclass(run(loop_type(), "asyncio"), asyncio.BaseEventLoop)


def _tracer(**env: str) -> trace.Tracer:
    settings = Settings.from_env("order", env)
    return TracerProvider(sampler=sampler_for(settings)).get_tracer("test")


def _sampled_caller() -> Context:
    caller = SpanContext(
        trace_id=0x5CE0E9A56015FEC5AADFA328AE398115,
        span_id=0xAB54A98CEB1F0AD2,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(caller))


def test_without_an_exporter_nothing_is_recorded_but_every_span_has_a_trace_id():
    tracer = _tracer()
    root = tracer.start_span("rpc")
    assert not root.is_recording()
    assert root.get_span_context().is_valid  # log lines still carry a trace id
    assert not root.get_span_context().trace_flags.sampled
    child = tracer.start_span("call", context=trace.set_span_in_context(root))
    assert child.get_span_context().trace_id == root.get_span_context().trace_id


def test_exported_traces_are_head_sampled_and_every_span_follows_its_caller():
    assert _tracer(OMNI_TRACE_FILE="/dev/null").start_span("rpc").is_recording()
    never = _tracer(OMNI_TRACE_FILE="/dev/null", OMNI_TRACE_SAMPLE_RATIO="0")
    assert not never.start_span("new trace").is_recording()
    followed = never.start_span("rpc", context=_sampled_caller())
    assert followed.is_recording()
    assert followed.get_span_context().trace_id == 0x5CE0E9A56015FEC5AADFA328AE398115


def _method(service: str, name: str) -> MethodDescriptor:
    return peer_service(service).methods_by_name[name]


@pytest.mark.parametrize(
    ("service", "method", "safe"),
    [
        ("order", "CaptureOrder", True),  # request_id: a retry returns the first answer
        ("inventory", "Reserve", True),
        ("catalog", "GetSku", True),  # a standard read
        ("order", "ListOrders", True),
        ("inventory", "ReserveBatch", False),  # holds stock, no request_id
        ("gateway", "SubmitChannelOrder", False),
        ("member", "IssueMemberCode", False),
        ("catalog", "ResolvePrice", False),  # not marked, not a standard read: not assumed
    ],
)
def test_only_calls_a_second_attempt_cannot_apply_twice_are_retried(service, method, safe):
    assert retry_safe(_method(service, method)) is safe


def test_the_service_config_retries_unavailable_for_the_safe_methods_only():
    service = peer_service("inventory")
    config = json.loads(json.dumps(service_config(service)))  # what the channel is given
    (method_config,) = config["methodConfig"]
    named = {entry["method"] for entry in method_config["name"]}
    assert named == {m.name for m in service.methods if retry_safe(m)}
    assert "ReserveBatch" not in named
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method_config["retryPolicy"]["maxAttempts"] <= 3
    assert "retryThrottling" in config


TEXT = st.text(max_size=12)


@given(
    sku=TEXT,
    street=TEXT,
    currency=TEXT,
    attribute=st.tuples(TEXT, TEXT),
    latitude=st.floats(allow_nan=False),
    quantity=st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
@example(sku="A", street="1\x00", currency="", attribute=("k\x00", "v"), latitude=0.0, quantity=0)
def test_a_request_whose_wire_data_has_no_zero_byte_holds_no_nul_string(
    sku, street, currency, attribute, latitude, quantity
):
    """Why the server may skip the walk over a request without a 0x00 byte: a NUL in any
    string, nested or a map key or value, is a 0x00 byte in the serialized request."""
    requests = [
        order.CaptureOrderRequest(
            channel_order_id=sku,
            delivery_address=order_pb2.Address(street=street, latitude=latitude),
            lines=[
                order.CaptureLine(
                    sku_code=sku,
                    quantity=quantity,
                    unit_price=Money(currency_code=currency, amount_minor=quantity),
                )
            ],
        ),
        cat.UpdateSkuRequest(sku_code=sku, attributes=dict([attribute])),
    ]
    for request in requests:
        try:
            reject_nul_strings(request)
        except InvalidArgument:
            assert b"\x00" in request.SerializeToString()
