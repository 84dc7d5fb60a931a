"""Every RPC of every service, fed requests built at random from its descriptor — empty,
extreme and malformed values, unknown enum numbers, out-of-range timestamps, deep nesting —
answers with a status a caller can act on, never INTERNAL, UNKNOWN or a transport failure.
The six services run in-process against the real database and broker.

Seeded, so a failure names the method and the request that caused it and replays the same."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor

from libs.config import SERVICES
from libs.grpc_call import _load_all_protos
from libs.local_stack import free_port
from libs.testing.services import running_service

REQUESTS_PER_METHOD = 30
# What a caller can act on. INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED or a deadline mean
# the service failed on input it should have refused.
ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
SERVICE_NAMES = {name: f"omni.{name}.v1.{name.capitalize()}Service" for name in SERVICES}
# Callers as the trusted edge presents them: none, an administrator, a stranger.
CALLERS: list[tuple[tuple[str, str], ...]] = [
    (),
    (("x-omni-staff-id", "platform-admin"), ("x-omni-scopes", "member.pii.read")),
    (("x-omni-staff-id", "nobody-at-all"),),
]

STRINGS = [
    "",
    " ",
    "A",
    "DEMO-TEE-RED-M",
    "a" * 300,
    "x" * 5000,
    "../../etc/passwd",
    "'; DROP TABLE skus; --",
    "名字😀",
    "\u202e\u200b",
    "%s%n",
    "2026-13-45",
    "-1",
    "99999999999999999999999",
    "CNY",
    "ZZZ",
    "+86 138 0013 8000",
]
PLAUSIBLE_STRINGS = [
    "FUZZ-1",
    "FUZZ-SKU-1",
    "DEMO-TEE-RED-M",
    "CNY",
    "Shanghai",
    "platform-admin",
    "G1",
    "+8613800138000",
    "2026-11",
    "orders:write",
    "mall",
]
INTS = [0, 1, -1, 7, 2**31 - 1, -(2**31)]
INT64S = [*INTS, 2**62, 2**63 - 1, -(2**63)]
UINTS = [0, 1, 2**32 - 1]
UINT64S = [0, 1, 2**64 - 1]
DOUBLES = [0.0, -0.0, 1.5, -1e308, 1e308, math.inf, -math.inf, math.nan, 91.0, -181.0]


def _methods() -> Iterator[tuple[str, MethodDescriptor]]:
    _load_all_protos()
    pool = descriptor_pool.Default()
    for name in SERVICES:
        for method in pool.FindServiceByName(SERVICE_NAMES[name]).methods:
            yield name, method


@dataclass
class Fuzzer:
    rng: random.Random
    # The chance that a field gets an extreme or malformed value rather than a plausible one.
    chaos: float = 0.5

    def message(self, descriptor: Any, depth: int = 0) -> Any:
        message: Any = message_factory.GetMessageClass(descriptor)()
        if descriptor.full_name == "google.protobuf.Timestamp":
            message.seconds = self.rng.choice([0, -62135596801, 253402300800, 2**40, 1_800_000_000])
            message.nanos = self.rng.choice([0, 999_999_999, -1, 2**31 - 1])
            return message
        for field in descriptor.fields:
            if self.rng.random() < 0.35 or (depth > 3 and field.type == field.TYPE_MESSAGE):
                continue
            self._fill(message, field, depth)
        return message

    def _fill(self, message: Any, field: Any, depth: int) -> None:
        target = getattr(message, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for _ in range(self.rng.randint(0, 2)):
                key = self.scalar(key_field)
                if value_field.type == value_field.TYPE_MESSAGE:
                    target[key].CopyFrom(self.message(value_field.message_type, depth + 1))
                else:
                    target[key] = self.scalar(value_field)
            return
        if field.is_repeated:
            for _ in range(self.rng.choice([0, 1, 2, 3, 60])):
                if field.type == field.TYPE_MESSAGE:
                    target.add().CopyFrom(self.message(field.message_type, depth + 1))
                else:
                    target.append(self.scalar(field))
            return
        if field.type == field.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(self.message(field.message_type, depth + 1))
        else:
            setattr(message, field.name, self.scalar(field))

    def scalar(self, field: Any) -> object:
        """A plausible value (so calls get past validation into the use cases), or with
        probability ``chaos`` an extreme or malformed one."""
        t = field.type
        if field.name == "request_id":
            return f"fuzz-{self.rng.getrandbits(48):x}"
        if self.rng.random() >= self.chaos:
            return self.plausible(field)
        if t == field.TYPE_STRING:
            return self.rng.choice(STRINGS)
        if t == field.TYPE_BYTES:
            return self.rng.choice([b"", b"\x00\xff", b"{}", b"not json", b"x" * 2000])
        if t == field.TYPE_BOOL:
            return self.rng.random() < 0.5
        if t in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            return self.rng.choice(DOUBLES if t == field.TYPE_DOUBLE else DOUBLES[:5])
        if t == field.TYPE_ENUM:
            numbers = [v.number for v in field.enum_type.values]
            return self.rng.choice([*numbers, max(numbers) + 1, 99, -1])
        if t in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
            return self.rng.choice(INT64S)
        if t in (field.TYPE_UINT64, field.TYPE_FIXED64):
            return self.rng.choice(UINT64S)
        if t in (field.TYPE_UINT32, field.TYPE_FIXED32):
            return self.rng.choice(UINTS)
        return self.rng.choice(INTS)

    def plausible(self, field: Any) -> object:
        t = field.type
        if t == field.TYPE_STRING:
            return self.rng.choice(PLAUSIBLE_STRINGS)
        if t == field.TYPE_BYTES:
            return b"{}"
        if t == field.TYPE_BOOL:
            return True
        if t in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            return self.rng.choice([31.23, 121.47, 1000.0])
        if t == field.TYPE_ENUM:
            numbers = [v.number for v in field.enum_type.values if v.number]
            return self.rng.choice(numbers or [0])
        return self.rng.choice([1, 2, 5, 100, 9900])


@pytest.fixture(scope="module")
async def platform(test_stack) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    async with contextlib.AsyncExitStack() as stack:
        ports: dict[str, int] = {}
        peers = dict(test_stack.settings("gateway").peer_addresses)
        for name in ("catalog", "inventory", "member", "distribution", "order", "gateway"):
            overrides: dict[str, object] = {"peer_addresses": dict(peers)}
            if name == "gateway":
                overrides["gateway_http_port"] = free_port()
            service = await stack.enter_async_context(
                running_service(test_stack.settings(name, **overrides))
            )
            ports[name] = service.port
            peers[name] = f"127.0.0.1:{service.port}"
        channels = {
            name: await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
            for name, port in ports.items()
        }
        yield channels


@pytest.mark.parametrize(
    ("service", "method"),
    [pytest.param(s, m, id=f"{s}.{m.name}") for s, m in _methods()],
)
async def test_no_request_makes_a_service_fail(platform, service, method: MethodDescriptor):
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    channel = platform[service]
    rng = random.Random(f"{service}.{method.name}")
    fuzzer = Fuzzer(rng)
    failures = []
    for index in range(REQUESTS_PER_METHOD):
        fuzzer.chaos = (0.0, 0.1, 0.5)[index % 3]
        request = fuzzer.message(request_type.DESCRIPTOR)
        metadata = CALLERS[index % len(CALLERS)]
        try:
            if method.client_streaming:
                call = channel.stream_unary(
                    path,
                    request_serializer=request_type.SerializeToString,
                    response_deserializer=response_type.FromString,
                )
                await call(
                    iter([request, fuzzer.message(request_type.DESCRIPTOR)]),
                    metadata=metadata,
                    timeout=20,
                )
            elif method.server_streaming:
                stream = channel.unary_stream(
                    path,
                    request_serializer=request_type.SerializeToString,
                    response_deserializer=response_type.FromString,
                )
                async for _ in stream(request, metadata=metadata, timeout=20):
                    pass
            else:
                call = channel.unary_unary(
                    path,
                    request_serializer=request_type.SerializeToString,
                    response_deserializer=response_type.FromString,
                )
                await call(request, metadata=metadata, timeout=20)
        except grpc.aio.AioRpcError as error:
            if error.code() not in ANSWERS:
                failures.append(f"#{index} {error.code().name} {error.details()!r}: {request}")
    assert not failures, f"{path}:\n" + "\n".join(failures)
