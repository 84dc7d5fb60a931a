"""Checks on request messages that every service needs before a value reaches PostgreSQL:
NUL characters (text columns cannot hold them), timestamps out of range, int64 bounds.

The gRPC server runs ``reject_nul_strings`` on every request, so a servicer never sees a NUL;
``field_time`` and ``check_int64`` are for the servicers and use cases that read such fields.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from libs.errors import InvalidArgument, Validator

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def reject_nul_strings(message: Message) -> None:
    """INVALID_ARGUMENT naming every string field (or map key/value) holding a NUL."""
    check = Validator()
    _walk(message, "", check)
    check.raise_if_any()


def _walk(message: Message, prefix: str, check: Validator) -> None:
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    check.add(name, "keys must not contain NUL characters")
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _walk(item, f"{name}[{key!s}].", check)
                elif isinstance(item, str) and "\x00" in item:
                    check.add(f"{name}[{key!s}]", "must not contain NUL characters")
            continue
        repeated = field.is_repeated
        items = list(value) if repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING:
            for index, item in enumerate(items):
                if "\x00" in item:
                    where = f"{name}[{index}]" if repeated else name
                    check.add(where, "must not contain NUL characters")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for index, item in enumerate(items):
                _walk(item, f"{name}[{index}]." if repeated else f"{name}.", check)


def to_datetime(stamp: Timestamp, field: str) -> datetime:
    """A Timestamp as an aware UTC datetime; out of range is INVALID_ARGUMENT on ``field``."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument.field(field, "is not a valid timestamp") from exc


def field_time(message: Message, field: str, name: str | None = None) -> datetime | None:
    """The timestamp field ``field`` of ``message`` (None when unset), validated."""
    if not message.HasField(field):
        return None
    return to_datetime(getattr(message, field), name or field)


def check_int64(v: Validator, value: int, field: str) -> None:
    """Sums and products of request values must still fit a bigint column."""
    v.check(INT64_MIN <= value <= INT64_MAX, field, "is out of range")


def timestamp(moment: datetime) -> Timestamp:
    """A datetime as a Timestamp (a naive one is taken as UTC), for responses and events."""
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo is None else moment.astimezone(UTC))
    return stamp


def optional_timestamp(moment: datetime | None) -> Timestamp | None:
    """``timestamp``, with None (an unset field) for None."""
    return None if moment is None else timestamp(moment)
