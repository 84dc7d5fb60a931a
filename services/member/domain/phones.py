"""Phone numbers, the members' natural key.

Rule: separators (spaces, '-', '.', parentheses) are ignored. Eleven digits starting with
1 and a second digit 3-9 are a mainland China mobile and get +86. A number starting with
'+' or '00' is international: a mainland number (+86) must then be such a mobile, any other
country code must be E.164 (country code not starting with 0, 8 to 15 digits in all).
Anything else is refused. The normalised form is E.164: '+' and digits, e.g. +8613812345678.
"""

from __future__ import annotations

import re

from libs.errors import InvalidArgument

_SEPARATORS = re.compile(r"[\s\-.()]")
_CN_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_E164_DIGITS = re.compile(r"^[1-9][0-9]{7,14}$")

PHONE_RULE = (
    "must be a mainland China mobile (11 digits starting 13-19, optionally +86) "
    "or an international number in E.164 form (+ and 8-15 digits)"
)


def normalise_phone(raw: str, field: str = "phone") -> str:
    """The E.164 form of ``raw``; InvalidArgument naming ``field`` when it is no phone."""
    text = _SEPARATORS.sub("", raw or "")
    if not text:
        raise InvalidArgument.field(field, "is required")
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif _CN_MOBILE.match(text):
        return "+86" + text
    else:
        raise InvalidArgument.field(field, PHONE_RULE)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidArgument.field(field, PHONE_RULE)
    if digits.startswith("86"):
        if not _CN_MOBILE.match(digits[2:]):
            raise InvalidArgument.field(field, PHONE_RULE)
        return "+" + digits
    if not _E164_DIGITS.match(digits):
        raise InvalidArgument.field(field, PHONE_RULE)
    return "+" + digits
