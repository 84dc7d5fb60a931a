"""Masking of personal data: callers see phone and name only with the member.pii.read scope.

Customer data is the asset most at risk (insiders, leaks), so the default is masked and the
full value needs an explicit scope, carried in the call's metadata ``x-omni-scopes``
(comma or space separated) and set by the gateway from the caller's credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PII_READ_SCOPE = "member.pii.read"
SCOPES_METADATA_KEY = "x-omni-scopes"

_SPLIT = re.compile(r"[\s,]+")


def scopes_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> frozenset[str]:
    found: set[str] = set()
    for key, value in metadata:
        if key.lower() == SCOPES_METADATA_KEY:
            text = value.decode() if isinstance(value, bytes) else value
            found.update(s for s in _SPLIT.split(text) if s)
    return frozenset(found)


def may_read_pii(scopes: frozenset[str]) -> bool:
    return PII_READ_SCOPE in scopes


def mask_phone(phone: str) -> str:
    """'+8613812345678' → '+86 138****5678'; other numbers keep 2 leading and 2 trailing
    digits. Never more than 7 digits of the number stay visible."""
    if not phone:
        return ""
    digits = phone.lstrip("+")
    if phone.startswith("+86") and len(digits) == 13:
        national = digits[2:]
        return f"+86 {national[:3]}****{national[-4:]}"
    if len(digits) <= 4:
        return "+" + "*" * len(digits)
    return "+" + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def mask_name(name: str) -> str:
    """Keeps the first character only: '张三丰' → '张**', 'Alice' → 'A****'."""
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)
