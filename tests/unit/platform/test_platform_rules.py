"""Pure rules of the shared mechanics (no I/O)."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given
from hypothesis import strategies as st
from omni.catalog.v1 import catalog_service_pb2 as cat

from libs.config import ConfigError, Settings, all_topics
from libs.db import is_database_unavailable, is_retryable_conflict
from libs.errors import FieldViolation, InvalidArgument, NotFound, Validator
from libs.grpc_errors import status_code_for, to_status
from libs.idempotency import fingerprint
from libs.pagination import decode_token, encode_token, page_size
from libs.platform_tables import OUTBOX_BUCKETS
from libs.unit_of_work import bucket_for


def test_defaults_need_no_environment_except_the_servers():
    settings = Settings.from_env("inventory", {})
    assert settings.grpc_port == 50052
    assert settings.metrics_port == 9102
    assert settings.topic("catalog") == "omni.catalog.v1"
    assert settings.dead_letter_topic() == "omni.inventory.dlq"
    assert settings.peer_addresses["order"] == "127.0.0.1:50053"
    with pytest.raises(ConfigError, match="OMNI_PG_DSN"):
        settings.database_url()
    with pytest.raises(ConfigError, match="OMNI_KAFKA_BOOTSTRAP"):
        settings.require_kafka()


def test_each_service_gets_its_own_database_on_the_server_including_unix_sockets():
    env = {
        "OMNI_PG_DSN": "postgresql://postgres:@/postgres?host=/tmp/pg",
        "OMNI_DATABASE_PREFIX": "x_",
    }
    url = Settings.from_env("order", env).database_url()
    assert url.drivername == "postgresql+asyncpg"
    assert url.database == "x_order"
    assert url.query["host"] == "/tmp/pg"
    override = {"OMNI_ORDER_DATABASE_URL": "postgresql://u:p@db:5433/orders"}
    assert Settings.from_env("order", {**env, **override}).database_url().database == "orders"


def test_malformed_settings_are_refused_with_the_variable_named():
    with pytest.raises(ConfigError, match="OMNI_CATALOG_GRPC_PORT"):
        Settings.from_env("catalog", {"OMNI_CATALOG_GRPC_PORT": "fifty"})
    with pytest.raises(ConfigError, match="unknown service"):
        Settings.from_env("billing", {})


def test_topic_prefix_isolates_every_topic():
    assert all(t.startswith("run1.") for t in all_topics("run1."))
    assert len(set(all_topics())) == 12


def test_validator_names_every_bad_field_at_once():
    v = Validator()
    v.check(False, "sku_code", "is required")
    v.check(True, "name", "fine")
    v.add("barcode", "bad check digit")
    with pytest.raises(InvalidArgument) as caught:
        v.raise_if_any()
    assert [x.field for x in caught.value.violations] == ["sku_code", "barcode"]


def test_invalid_argument_becomes_a_status_with_bad_request_details():
    error = InvalidArgument([FieldViolation("lines[0].quantity", "must be positive")])
    status = to_status(error, "omni.order")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    decoded = status_pb2.Status.FromString(value)
    bad_request = error_details_pb2.BadRequest()
    assert decoded.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "lines[0].quantity"
    assert status_code_for(NotFound("x")) == grpc.StatusCode.NOT_FOUND


def test_a_retry_has_the_same_fingerprint_and_a_different_request_does_not():
    first = cat.CreateSkuRequest(request_id="a", sku_code="X", style_code="S", name="n")
    retry = cat.CreateSkuRequest(request_id="b", sku_code="X", style_code="S", name="n")
    other = cat.CreateSkuRequest(request_id="a", sku_code="Y", style_code="S", name="n")
    assert fingerprint(first) == fingerprint(retry)
    assert fingerprint(first) != fingerprint(other)


@given(st.text(min_size=1, max_size=80))
def test_one_key_always_lands_in_the_same_outbox_bucket(key: str):
    bucket = bucket_for(key)
    assert 0 <= bucket < OUTBOX_BUCKETS
    assert bucket_for(key) == bucket


POSITION_VALUES = st.one_of(
    st.text(st.characters(blacklist_characters="\x00"), max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)


@given(st.lists(POSITION_VALUES, min_size=1, max_size=3))
def test_a_page_token_gives_back_its_position(position: list[str | int]):
    assert decode_token(encode_token(position), len(position)) == position


@pytest.mark.parametrize("position", [[2**63], [-(2**63) - 1], ["a\x00b"], [True]])
def test_a_token_no_service_could_issue_is_refused(position: list[object]):
    """Values a database column could not take never reach a query."""
    with pytest.raises(InvalidArgument):
        decode_token(encode_token(position), 1)  # type: ignore[arg-type]


def test_a_token_of_the_wrong_kinds_is_refused():
    with pytest.raises(InvalidArgument):
        decode_token(encode_token(["7"]), 1, (int,))
    assert decode_token(encode_token([7]), 1, (int,)) == [7]


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", encode_token(["a", "b"])])
def test_a_foreign_page_token_is_invalid_argument_on_page_token(token: str):
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, arity=1)
    assert caught.value.violations[0].field == "page_token"


def test_page_size_defaults_caps_and_refuses_negatives():
    assert page_size(0) == 50
    assert page_size(5000) == 1000
    with pytest.raises(InvalidArgument):
        page_size(-1)


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


class _WrappedError(Exception):
    def __init__(self, orig: BaseException) -> None:
        super().__init__("wrapped")
        self.orig = orig


@pytest.mark.parametrize(
    ("sqlstate", "retryable"), [("40P01", True), ("40001", True), ("23505", False)]
)
def test_deadlocks_and_serialization_failures_are_retryable_conflicts(sqlstate, retryable):
    assert is_retryable_conflict(_WrappedError(_DriverError(sqlstate))) is retryable
    assert is_retryable_conflict(ValueError("plain")) is False


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (_WrappedError(_DriverError("53300")), True),  # too many clients already
        (_WrappedError(_DriverError("57P03")), True),  # the server is starting up
        (_WrappedError(asyncpg.exceptions.TooManyConnectionsError("full")), True),
        (_WrappedError(ConnectionResetError()), True),
        (_WrappedError(_DriverError("23505")), False),  # a unique violation is the caller's
        (ValueError("plain"), False),
    ],
)
def test_a_database_that_cannot_be_reached_is_unavailable_not_a_bug(error, unavailable):
    """Such errors answer UNAVAILABLE and are retried by consumers, never dead-lettered."""
    assert is_database_unavailable(error) is unavailable


def test_only_a_sampled_trace_context_is_sampled() -> None:
    from libs.messaging import sampled

    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    assert sampled({"traceparent": f"00-{trace_id}-{span_id}-01"})
    # Bit 1 (random trace id, W3C level 2) set as well: still sampled.
    assert sampled({"traceparent": f"00-{trace_id}-{span_id}-03"})
    assert not sampled({"traceparent": f"00-{trace_id}-{span_id}-02"})
    assert not sampled({"traceparent": f"00-{trace_id}-{span_id}-00"})
    assert not sampled({"traceparent": "garbage"}) and not sampled({})
