"""SKUs under the unified code (统一编码): what makes a SKU well formed."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from libs.errors import FailedPrecondition, Validator
from services.catalog.domain.pricing import Money, validate_money

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
MAX_NAME_LENGTH = 200
MAX_ATTRIBUTE_LENGTH = 40
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY_LENGTH = 40
MAX_ATTRIBUTE_VALUE_LENGTH = 200


class Lifecycle(enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    DISCONTINUED = "discontinued"


def next_lifecycle(current: Lifecycle, target: Lifecycle) -> Lifecycle:
    """Draft → active → discontinued, or draft → discontinued; discontinued is final.

    Asking for the state a SKU is already in is accepted (nothing changes)."""
    allowed = {
        Lifecycle.DRAFT: {Lifecycle.DRAFT, Lifecycle.ACTIVE, Lifecycle.DISCONTINUED},
        Lifecycle.ACTIVE: {Lifecycle.ACTIVE, Lifecycle.DISCONTINUED},
        Lifecycle.DISCONTINUED: {Lifecycle.DISCONTINUED},
    }
    if target not in allowed[current]:
        raise FailedPrecondition(
            f"a {current.value} SKU cannot become {target.value}; discontinued is final"
        )
    return target


def code_ok(code: str) -> bool:
    return bool(CODE_PATTERN.match(code))


def validate_code(v: Validator, field: str, code: str, *, required: bool = True) -> None:
    if not code:
        if required:
            v.add(field, "is required")
        return
    v.check(
        code_ok(code),
        field,
        "must be 1-64 of A-Z, 0-9, '.', '_', '-', starting with a letter or digit",
    )


def validate_attributes(v: Validator, field: str, attributes: dict[str, str]) -> None:
    v.check(len(attributes) <= MAX_ATTRIBUTES, field, f"at most {MAX_ATTRIBUTES} attributes")
    for key, value in attributes.items():
        v.check(
            0 < len(key) <= MAX_ATTRIBUTE_KEY_LENGTH,
            f"{field}[{key}]",
            f"keys must be 1-{MAX_ATTRIBUTE_KEY_LENGTH} characters",
        )
        v.check(
            len(value) <= MAX_ATTRIBUTE_VALUE_LENGTH,
            f"{field}[{key}]",
            f"values must be at most {MAX_ATTRIBUTE_VALUE_LENGTH} characters",
        )


def validate_name(v: Validator, field: str, name: str) -> None:
    v.check(bool(name.strip()), field, "is required")
    v.check(len(name) <= MAX_NAME_LENGTH, field, f"must be at most {MAX_NAME_LENGTH} characters")


def barcode_check_digit_ok(barcode: str) -> bool:
    """EAN-13 or UPC-A (GTIN-13 / GTIN-12): digits with a valid mod-10 check digit."""
    if not barcode.isascii() or not barcode.isdigit() or len(barcode) not in (12, 13):
        return False
    digits = [int(c) for c in barcode]
    body, check = digits[:-1], digits[-1]
    # Weights 3,1,3,1… from the digit next to the check digit, for both lengths.
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def gtin13(barcode: str) -> str:
    """The GTIN-13 form of a barcode: a UPC-A code is the EAN-13 code with a leading zero
    (same check digit), so "036000291452" and "0036000291452" are one GTIN. Uniqueness is
    checked on this form; the SKU keeps the barcode as sent."""
    return barcode.zfill(13) if barcode else ""


@dataclass(frozen=True)
class NewSku:
    sku_code: str
    style_code: str
    name: str
    barcode: str
    color: str
    size: str
    list_price: Money | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    lifecycle: Lifecycle = Lifecycle.DRAFT

    def validate(self) -> None:
        """Raises InvalidArgument naming every malformed field."""
        v = Validator()
        self.collect_violations(v)
        v.raise_if_any()

    def collect_violations(self, v: Validator) -> None:
        validate_code(v, "sku_code", self.sku_code)
        validate_code(v, "style_code", self.style_code)
        validate_name(v, "name", self.name)
        if self.barcode:
            v.check(
                barcode_check_digit_ok(self.barcode),
                "barcode",
                "must be an EAN-13 or UPC-A code with a valid check digit",
            )
        for name, value in (("color", self.color), ("size", self.size)):
            v.check(
                len(value) <= MAX_ATTRIBUTE_LENGTH,
                name,
                f"must be at most {MAX_ATTRIBUTE_LENGTH} characters",
            )
        validate_money(v, "list_price", self.list_price, required=False)
        validate_attributes(v, "attributes", self.attributes)
        v.check(
            self.lifecycle in (Lifecycle.DRAFT, Lifecycle.ACTIVE),
            "lifecycle",
            "a new SKU is DRAFT or ACTIVE",
        )


@dataclass(frozen=True)
class Sku:
    sku_code: str
    style_code: str
    name: str
    barcode: str
    color: str
    size: str
    created_at: datetime
    lifecycle: Lifecycle = Lifecycle.DRAFT
    list_price: Money | None = None
    brand_code: str = ""
    category_code: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None
