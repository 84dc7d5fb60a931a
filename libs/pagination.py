"""Page sizes and opaque page tokens for List RPCs (keyset pagination), one way for every
service: a token is the position (the sort key of the last row) as base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json

from libs.errors import InvalidArgument
from libs.proto_input import INT64_MAX, INT64_MIN

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

Position = list[str | int]


def page_size(
    requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    """0 means the default; more than the maximum is capped; negative is refused."""
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    return min(requested or default, maximum)


def encode_token(position: Position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def decode_token(
    token: str, arity: int, kinds: tuple[type[str] | type[int], ...] | None = None
) -> Position | None:
    """The position in ``token`` (``arity`` values, of the ``kinds`` given, if any), None for
    the first page. Integers must fit int64 and strings hold no NUL: a forged token is
    INVALID_ARGUMENT, never a failure in the database."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument.field("page_token", "is not a token this service issued") from exc
    if (
        not isinstance(position, list)
        or len(position) != arity
        or not all(_plain(v) for v in position)
        or (kinds is not None and not all(_is(v, k) for v, k in zip(position, kinds, strict=True)))
    ):
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    return position


def _plain(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    return isinstance(value, str) and "\x00" not in value


def _is(value: object, kind: type[str] | type[int]) -> bool:
    return isinstance(value, kind)
