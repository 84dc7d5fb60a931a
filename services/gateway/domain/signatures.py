"""Request signatures: our own scheme for channels and partners, and the marketplace-style
schemes the marketplace connectors verify. Pure functions; the caller supplies the secret,
the clock and whether a nonce was seen before.

Omni scheme (headers ``X-Omni-Key``, ``X-Omni-Timestamp`` (unix seconds), ``X-Omni-Nonce``,
``X-Omni-Signature``)::

    string_to_sign = METHOD + "\\n" + PATH + "\\n" + TIMESTAMP + "\\n" + NONCE + "\\n"
                     + hex(sha256(body))
    signature      = hex(hmac_sha256(secret, string_to_sign))      # lowercase

PATH is the URL path with its query string (``/open/v1/availability?sku_codes=A``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

# A request older or newer than this is refused: it bounds how long nonces must be kept.
REPLAY_WINDOW_SECONDS = 300
MAX_NONCE_LENGTH = 64
# Unix seconds have 10 digits until 2286; a longer "timestamp" is not one (and Python's int()
# refuses strings of thousands of digits).
MAX_TIMESTAMP_DIGITS = 12


class SignatureError(Exception):
    """The request is not authentic (answered 401); ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedRequest:
    key_id: str
    timestamp: int
    nonce: str
    signature: str


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def string_to_sign(method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    return "\n".join([method.upper(), path, str(timestamp), nonce, body_digest(body)])


def sign(secret: str, method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    message = string_to_sign(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def is_unix_seconds(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= MAX_TIMESTAMP_DIGITS


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Read the Omni signature headers (case-insensitive mapping expected)."""
    key_id = headers.get("x-omni-key", "")
    raw_ts = headers.get("x-omni-timestamp", "")
    nonce = headers.get("x-omni-nonce", "")
    signature = headers.get("x-omni-signature", "")
    if not key_id or not raw_ts or not nonce or not signature:
        raise SignatureError("missing signature headers")
    if not is_unix_seconds(raw_ts):
        raise SignatureError("timestamp is not unix seconds")
    if len(nonce) > MAX_NONCE_LENGTH:
        raise SignatureError("nonce too long")
    return SignedRequest(key_id, int(raw_ts), nonce, signature)


def check_fresh(timestamp: int, now: float, window: int = REPLAY_WINDOW_SECONDS) -> None:
    """Refuse a timestamp outside [now - window, now + window] (clock skew both ways)."""
    if abs(now - timestamp) > window:
        raise SignatureError("timestamp outside the replay window")


def verify(
    secret: str, request: SignedRequest, method: str, path: str, body: bytes, now: float
) -> None:
    """Check freshness and the HMAC (constant time). The nonce is checked by the caller,
    against storage shared by every replica, only after this passes."""
    check_fresh(request.timestamp, now)
    expected = sign(secret, method, path, request.timestamp, request.nonce, body)
    if not hmac.compare_digest(expected, request.signature.lower()):
        raise SignatureError("signature mismatch")


# --- Tmall/Taobao-style ----------------------------------------------------------------
# Query parameters app_key, timestamp (unix seconds), sign_method=hmac-sha256, sign.
# sign = UPPER(hex(hmac_sha256(secret, concat(k + v for k, v in sorted(params without sign))
#                                      + body)))


def tmall_sign(secret: str, params: Mapping[str, str], body: bytes) -> str:
    canonical = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign")
    return hmac.new(secret.encode(), canonical.encode() + body, hashlib.sha256).hexdigest().upper()


# --- JD-style --------------------------------------------------------------------------
# Query parameters app_key, timestamp (unix seconds), v=2.0, sign; the body is signed as if
# it were the parameter 360buy_param_json, and the secret wraps the string on both sides:
# sign = UPPER(hex(hmac_sha256(secret, secret + concat(k + v sorted, incl.
#                                              360buy_param_json=body) + secret)))


def jd_sign(secret: str, params: Mapping[str, str], body: bytes) -> str:
    merged = {k: v for k, v in params.items() if k != "sign"}
    merged["360buy_param_json"] = body.decode("utf-8", errors="replace")
    canonical = secret + "".join(f"{k}{v}" for k, v in sorted(merged.items())) + secret
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest().upper()


def marketplace_request(style: str, params: Mapping[str, str]) -> SignedRequest:
    """The marketplace's key, timestamp and signature (these schemes carry no nonce)."""
    key_id = params.get("app_key", "")
    raw_ts = params.get("timestamp", "")
    signature = params.get("sign", "")
    if not key_id or not raw_ts or not signature:
        raise SignatureError(f"missing {style} signature parameters")
    if not is_unix_seconds(raw_ts):
        raise SignatureError("timestamp is not unix seconds")
    if len(signature) > MAX_NONCE_LENGTH:
        raise SignatureError("sign too long")
    return SignedRequest(key_id, int(raw_ts), signature, signature)


def verify_marketplace(
    style: str, secret: str, params: Mapping[str, str], body: bytes, now: float
) -> None:
    request = marketplace_request(style, params)
    check_fresh(request.timestamp, now)
    expected = (tmall_sign if style == "tmall" else jd_sign)(secret, params, body)
    if not hmac.compare_digest(expected, request.signature.upper()):
        raise SignatureError("signature mismatch")
