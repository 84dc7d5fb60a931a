"""Page sizes and opaque page tokens for List RPCs (keyset pagination), one way for every
service: a token is the position (the sort key of the last row) as base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json

from libs.errors import InvalidArgument

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


def decode_token(token: str, arity: int) -> Position | None:
    """The position in ``token`` (``arity`` values), None for the first page."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument.field("page_token", "is not a token this service issued") from exc
    if (
        not isinstance(position, list)
        or len(position) != arity
        or not all(isinstance(v, str | int) for v in position)
    ):
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    return position
