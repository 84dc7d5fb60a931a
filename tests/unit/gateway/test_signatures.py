"""Signature schemes: ours, Tmall-style and JD-style; replay window edges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.domain import signatures as sig
from services.gateway.domain.signatures import SignatureError

SECRET = "s3cret"


def signed(body: bytes = b"{}", ts: int = 1_000_000, nonce: str = "n1") -> sig.SignedRequest:
    return sig.SignedRequest("k1", ts, nonce, sig.sign(SECRET, "POST", "/p?a=1", ts, nonce, body))


def test_a_correct_signature_verifies() -> None:
    sig.verify(SECRET, signed(), "POST", "/p?a=1", b"{}", now=1_000_000)


@pytest.mark.parametrize(
    ("secret", "method", "path", "body"),
    [
        ("other", "POST", "/p?a=1", b"{}"),
        (SECRET, "GET", "/p?a=1", b"{}"),
        (SECRET, "POST", "/p?a=2", b"{}"),
        (SECRET, "POST", "/p?a=1", b'{"x":1}'),
    ],
)
def test_any_change_breaks_the_signature(secret: str, method: str, path: str, body: bytes) -> None:
    with pytest.raises(SignatureError, match="mismatch"):
        sig.verify(secret, signed(), method, path, body, now=1_000_000)


@given(st.integers(min_value=-10_000, max_value=10_000))
def test_replay_window_is_inclusive_both_ways(skew: int) -> None:
    request = signed(ts=1_000_000)
    now = 1_000_000 + skew
    if abs(skew) <= sig.REPLAY_WINDOW_SECONDS:
        sig.verify(SECRET, request, "POST", "/p?a=1", b"{}", now=now)
    else:
        with pytest.raises(SignatureError, match="window"):
            sig.verify(SECRET, request, "POST", "/p?a=1", b"{}", now=now)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {
            "x-omni-key": "k",
            "x-omni-timestamp": "abc",
            "x-omni-nonce": "n",
            "x-omni-signature": "s",
        },
        {
            "x-omni-key": "k",
            "x-omni-timestamp": "1",
            "x-omni-nonce": "n" * 65,
            "x-omni-signature": "s",
        },
    ],
)
def test_missing_or_malformed_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        sig.parse_headers(headers)


def test_tmall_sign_is_uppercase_hmac_over_sorted_params_and_body() -> None:
    params = {"timestamp": "100", "app_key": "k", "sign_method": "hmac-sha256"}
    import hashlib
    import hmac

    expected = hmac.new(
        b"sec", b"app_keyksign_methodhmac-sha256timestamp100" + b"BODY", hashlib.sha256
    )
    assert sig.tmall_sign("sec", params, b"BODY") == expected.hexdigest().upper()
    # The sign parameter itself is not signed, and order of parameters does not matter.
    assert sig.tmall_sign("sec", {**params, "sign": "X"}, b"BODY") == sig.tmall_sign(
        "sec", dict(reversed(params.items())), b"BODY"
    )


def test_jd_sign_wraps_with_the_secret_and_signs_the_body_as_a_parameter() -> None:
    import hashlib
    import hmac

    params = {"app_key": "k", "timestamp": "100", "v": "2.0"}
    canonical = "sec" + "360buy_param_json{}app_keyktimestamp100v2.0" + "sec"
    expected = hmac.new(b"sec", canonical.encode(), hashlib.sha256).hexdigest().upper()
    assert sig.jd_sign("sec", params, b"{}") == expected


@pytest.mark.parametrize("style", ["tmall", "jd"])
def test_marketplace_verification(style: str) -> None:
    params = {"app_key": "k", "timestamp": "1000"}
    signer = sig.tmall_sign if style == "tmall" else sig.jd_sign
    params["sign"] = signer("sec", params, b"{}")
    sig.verify_marketplace(style, "sec", params, b"{}", now=1000)
    with pytest.raises(SignatureError):
        sig.verify_marketplace(style, "sec", params, b"{ }", now=1000)
    with pytest.raises(SignatureError):
        sig.verify_marketplace(style, "sec", params, b"{}", now=1000 + 301)
