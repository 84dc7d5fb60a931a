"""Signed guide codes for showroom links and QR codes (专属展厅).

A code is ``<staff id>.<signature>``, the signature an HMAC-SHA256 of the staff id under the
service's link key, so a customer cannot turn someone else's link into their own guide's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_SIGNATURE_CHARS = 22  # 132 bits of the MAC: plenty against guessing, short enough for a QR.


def _utf8(text: str) -> bytes:
    # Text that came from outside may hold anything; never fail on it, just compare it.
    return text.encode("utf-8", "surrogatepass")


def _signature(key: bytes, staff_id: str) -> str:
    mac = hmac.new(key, b"guide-code:" + _utf8(staff_id), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")[:_SIGNATURE_CHARS]


def issue(key: bytes, staff_id: str) -> str:
    return f"{staff_id}.{_signature(key, staff_id)}"


def verify(key: bytes, code: str) -> str | None:
    """The staff id a code was issued for, or None when the code is not genuine — whatever
    the text (a signature is compared as bytes: non-ASCII text is simply not a match)."""
    staff_id, dot, signature = code.rpartition(".")
    if not dot or not staff_id:
        return None
    expected = _signature(key, staff_id).encode()
    if not hmac.compare_digest(_utf8(signature), expected):
        return None
    return staff_id
