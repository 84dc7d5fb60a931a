"""Every HTTP input checked once, before any route sees it: the path, the query string, the
signature headers and every string and number of a JSON body. What PostgreSQL, protobuf or
Python's own int/float conversion would choke on (NUL and other control characters, lone
surrogates, undecodable bytes, numbers of hundreds of digits, NaN/Infinity, absurd lengths
or nesting) is answered 422 with the field named, in the one error shape
(entrypoints/errors.py), so no bad input can reach a 5xx.

The checks are pure functions (``check_path``, ``check_query``, ``check_headers``,
``check_json``) returning field violations; ``InputGuard`` is the ASGI middleware that
applies them. It sits inside ``PayloadRecorder``, so a refused POST is still kept raw for
inspection.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from services.gateway.entrypoints import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Violations = list[tuple[str, str]]

MAX_PATH_CHARS = 1024
MAX_QUERY_CHARS = 16_384
MAX_QUERY_VALUE_CHARS = 1024
MAX_HEADER_CHARS = 256
# Integers beyond int64 fit no field of ours; JSON allows any length, Python's int() then
# refuses beyond 4300 digits and protobuf beyond 64 bits.
MAX_INT_DIGITS = 19
MAX_JSON_DEPTH = 32
MAX_JSON_STRING_CHARS = 10_000

# Control characters: never in a path, query, header or identifier.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# In JSON strings tab, newline and carriage return are ordinary text (an address line).
JSON_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
# The headers the gateway reads (signature scheme, content type).
CHECKED_HEADERS = ("x-omni-key", "x-omni-timestamp", "x-omni-nonce", "x-omni-signature")


def text_problem(value: str, control: re.Pattern[str] = CONTROL) -> str | None:
    """Why ``value`` cannot be taken as text, or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if control.search(value):
        return "must not contain control characters"
    if SURROGATE.search(value):
        return "is not valid Unicode (lone surrogate)"
    return None


def check_path(path: str) -> Violations:
    """``path`` as decoded by the server (percent-escapes resolved)."""
    if len(path) > MAX_PATH_CHARS:
        return [("path", f"is longer than {MAX_PATH_CHARS} characters")]
    problem = text_problem(path)
    return [("path", problem)] if problem else []


def _decode_component(raw: str) -> str | None:
    """A query name or value: '+' is a space, percent-escapes are UTF-8; None if not."""
    try:
        return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _label(name: str) -> str:
    return name if text_problem(name) is None and len(name) <= 64 else "?"


def check_query(query_string: bytes) -> Violations:
    """Every parameter of the raw query string, decoded strictly (invalid UTF-8 is named,
    not silently replaced)."""
    if len(query_string) > MAX_QUERY_CHARS:
        return [("query", f"is longer than {MAX_QUERY_CHARS} characters")]
    found: Violations = []
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = _decode_component(raw_name)
        if name is None or (problem := text_problem(name)) is not None:
            found.append(("query", "a parameter name is not valid text"))
            continue
        field = f"query.{_label(name)}"
        value = _decode_component(raw_value)
        if value is None:
            found.append((field, "is not valid UTF-8"))
        elif (problem := text_problem(value)) is not None:
            found.append((field, problem))
        elif len(value) > MAX_QUERY_VALUE_CHARS:
            found.append((field, f"is longer than {MAX_QUERY_VALUE_CHARS} characters"))
    return found


def check_headers(headers: Iterable[tuple[bytes, bytes]]) -> Violations:
    """The signature headers the gateway reads (latin-1, as HTTP carries them)."""
    found: Violations = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name not in CHECKED_HEADERS:
            continue
        value = raw_value.decode("latin-1")
        if len(value) > MAX_HEADER_CHARS:
            found.append((f"header.{name}", f"is longer than {MAX_HEADER_CHARS} characters"))
        elif (problem := text_problem(value)) is not None:
            found.append((f"header.{name}", problem))
        elif not value.isascii():
            found.append((f"header.{name}", "must be ASCII"))
    return found


class _Number:
    """A JSON number that has no place in any field: kept to name where it was."""

    def __init__(self, text: str, why: str) -> None:
        self.text = text
        self.why = why


def _parse_int(text: str) -> int | _Number:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Number(text, f"is a number with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float | _Number:
    if len(text) > 64:
        return _Number(text, "is a number written with more than 64 characters")
    value = float(text)
    if not math.isfinite(value):
        return _Number(text, "is a number out of range")
    return value


def _parse_constant(text: str) -> _Number:
    return _Number(text, f"{text} is not a JSON number")


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def check_json(body: bytes) -> Violations | None:
    """Violations in a JSON body, or None when it is not JSON at all (then the route's own
    parsing answers its usual 422 ``json_invalid``)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [("body", "is not UTF-8")]
    try:
        document = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        return [("body", f"is nested deeper than {MAX_JSON_DEPTH} levels")]
    except ValueError:
        return None
    found: Violations = []
    # Iterative, so a deep document cannot exhaust the stack here either.
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack and len(found) < 20:
        where, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            found.append((where or "body", f"is nested deeper than {MAX_JSON_DEPTH} levels"))
            continue
        if isinstance(value, str):
            problem = text_problem(value, JSON_CONTROL)
            if problem is None and len(value) > MAX_JSON_STRING_CHARS:
                problem = f"is longer than {MAX_JSON_STRING_CHARS} characters"
            if problem:
                found.append((where or "body", problem))
        elif isinstance(value, _Number):
            found.append((where or "body", value.why))
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                problem = text_problem(key)
                if problem:
                    found.append((where or "body", f"has a key that {problem}"))
                    continue
                stack.append((_join(where, key), item, depth + 1))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append((_join(where, index), value[index], depth + 1))
    return found


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when the client went away. Raises BodyTooLarge."""
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return body


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")
        self.limit = limit


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands the app the body already read, then the real stream
    (for the disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    raw = errors.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class InputGuard:
    """ASGI middleware: refuse bad input centrally with 422 naming the field."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_body: int = 1_000_000
    ) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = check_path(scope.get("path", ""))
        found += check_query(scope.get("query_string", b""))
        found += check_headers(scope.get("headers", []))
        if scope["method"] in ("POST", "PUT", "PATCH"):
            try:
                body = await read_body(receive, self.max_body)
            except BodyTooLarge as exc:
                await send_json(send, 413, errors.body("PAYLOAD_TOO_LARGE", str(exc)))
                return
            if body is None:
                return
            if body:
                found += check_json(body) or []
            receive = replaying(body, receive)
        if found:
            await send_json(
                send, 422, errors.body("INVALID_ARGUMENT", "the request is invalid", found)
            )
            return
        await self.app(scope, receive, send)
