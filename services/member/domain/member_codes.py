"""The e-member code: a QR payload the app shows and the POS scans.

Format ``v1.<payload>.<signature>``, both base64url without padding; payload
``<member_id>|<code_id>|<expires unix seconds>``, signature the first 16 bytes of
HMAC-SHA256(key, payload). Signed so it cannot be forged, expiring in about a minute so a
screenshot goes stale, and single use (the service records spent code ids) so it cannot be
replayed even within the minute.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from libs.errors import FailedPrecondition, InvalidArgument

VERSION = "v1"
SIGNATURE_BYTES = 16
DEFAULT_TTL = timedelta(seconds=60)
# Clock skew tolerated between the app's issuer and the resolving replica.
MAX_SKEW = timedelta(seconds=5)


@dataclass(frozen=True)
class MemberCode:
    member_id: str
    code_id: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: only the canonical spelling decodes, so no two texts carry one code (the
    spare bits of a last character, or characters outside the alphabet, are refused)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def issue(
    key: bytes, member_id: str, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> tuple[str, MemberCode]:
    code = MemberCode(member_id, secrets.token_hex(8), now + ttl)
    return encode(key, code), code


def encode(key: bytes, code: MemberCode) -> str:
    payload = f"{code.member_id}|{code.code_id}|{int(code.expires_at.timestamp())}".encode()
    return f"{VERSION}.{_b64(payload)}.{_b64(_sign(key, payload))}"


def verify(key: bytes, text: str, now: datetime) -> MemberCode:
    """The code's content when it is genuine and unexpired; spending it is the caller's."""
    forged = InvalidArgument.field("code", "is not a valid member code")
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise forged
    try:
        payload = _unb64(parts[1])
        signature = _unb64(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise forged from exc
    if not hmac.compare_digest(signature, _sign(key, payload)):
        raise forged
    try:
        member_id, code_id, expires = payload.decode().split("|")
        expires_at = datetime.fromtimestamp(int(expires), UTC)
    except (UnicodeDecodeError, ValueError) as exc:
        raise forged from exc
    if now > expires_at + MAX_SKEW:
        raise FailedPrecondition("member code expired; show a fresh one")
    return MemberCode(member_id, code_id, expires_at)
