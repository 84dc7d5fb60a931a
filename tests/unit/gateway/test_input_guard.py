"""The HTTP input guard's checks (pure): what they refuse, which field they name, and that
no input makes them raise."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.entrypoints.input_guard import (
    check_headers,
    check_json,
    check_path,
    check_query,
)


def test_path() -> None:
    assert check_path("/open/v1/orders/A1") == []
    assert check_path("/open/v1/orders/A\x00") == [("path", "must not contain NUL characters")]
    assert check_path("/x/\x1b") == [("path", "must not contain control characters")]
    assert check_path("/" + "a" * 5000)[0][0] == "path"


def test_query_is_decoded_strictly_and_names_the_parameter() -> None:
    assert check_query(b"sku_codes=A&sku_codes=B%20C+D") == []
    assert check_query(b"app_key=%00") == [("query.app_key", "must not contain NUL characters")]
    assert check_query(b"a=%FF") == [("query.a", "is not valid UTF-8")]
    assert check_query(b"%00=1") == [("query", "a parameter name is not valid text")]
    assert check_query(b"sign=" + b"A" * 2000)[0][0] == "query.sign"
    assert check_query(b"q=%E4%B8%AD") == []


def test_headers_only_the_signature_ones() -> None:
    assert check_headers([(b"user-agent", b"\x01")]) == []
    assert check_headers([(b"X-Omni-Key", b"k\x01")]) == [
        ("header.x-omni-key", "must not contain control characters")
    ]
    assert check_headers([(b"x-omni-timestamp", b"9" * 300)])[0][0] == "header.x-omni-timestamp"
    assert check_headers([(b"x-omni-nonce", "é".encode("latin-1"))]) == [
        ("header.x-omni-nonce", "must be ASCII")
    ]


def first_field(raw: bytes) -> str:
    found = check_json(raw)
    assert found
    return found[0][0]


def test_json_names_the_field() -> None:
    assert check_json(b'{"a": "ok\\n\\ttext", "b": [1, 2.5, -3]}') == []
    assert check_json(b'{"items": [{"sku": "A\\u0000"}]}') == [
        ("items[0].sku", "must not contain NUL characters")
    ]
    assert check_json(b'{"a": {"b": "\\u0007"}}') == [
        ("a.b", "must not contain control characters")
    ]
    assert check_json(b'{"m": "\\ud800"}') == [("m", "is not valid Unicode (lone surrogate)")]
    assert first_field(b'{"n": ' + b"9" * 400 + b"}") == "n"
    assert check_json(b'{"x": NaN, "y": -Infinity}') == [
        ("x", "NaN is not a JSON number"),
        ("y", "-Infinity is not a JSON number"),
    ]
    assert check_json(b'{"f": 1e999}') == [("f", "is a number out of range")]
    assert check_json(b'{"k\\u0000": 1}') == [
        ("body", "has a key that must not contain NUL characters")
    ]
    assert first_field(b"[" * 40 + b"]" * 40) == "[0]" * 33
    assert check_json(b"[" * 100_000 + b"]" * 100_000) is not None
    assert check_json(b"\xff\xfe") == [("body", "is not UTF-8")]
    # Not JSON: left to the route's own parsing (422 json_invalid).
    assert check_json(b"{not json") is None


@given(st.binary(max_size=200))
def test_any_bytes_never_raise(raw: bytes) -> None:
    check_json(raw)
    check_query(raw)
    check_path(raw.decode("latin-1"))
    check_headers([(b"x-omni-key", raw)])


@given(
    st.recursive(
        st.text() | st.integers() | st.floats(allow_nan=False) | st.none(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_is_checked_without_raising(document: object) -> None:
    found = check_json(json.dumps(document).encode())
    assert found is not None
