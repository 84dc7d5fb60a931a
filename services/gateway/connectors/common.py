"""What every connector shares: money in minor units, order lines, the platform order.

A connector is a pure translation: a channel's payload (validated by its pydantic model)
→ a platform command (``omni.order.v1.Order`` for orders), and platform facts → the
channel's outbound message. No I/O here; look-ups (SKU mappings) are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from omni.common.v1 import money_pb2
from omni.order.v1 import order_pb2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from libs.errors import FieldViolation, InvalidArgument

CURRENCY = "CNY"


class Strict(BaseModel):
    """Channel payload models refuse fields they do not know, so typos are named, and text
    with NUL characters (PostgreSQL text cannot hold them; no channel sends them on purpose)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class AddressIn(Strict):
    province: str = Field(min_length=1, max_length=64)
    city: str = Field(min_length=1, max_length=64)
    district: str = Field(default="", max_length=64)
    street: str = Field(min_length=1, max_length=256)
    postal_code: str = Field(default="", max_length=16)
    latitude: float = Field(default=0.0, ge=-90, le=90)
    longitude: float = Field(default=0.0, ge=-180, le=180)


@dataclass(frozen=True)
class Line:
    sku_code: str
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0


def money(minor: int, currency: str = CURRENCY) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=minor, currency_code=currency)


def yuan_to_minor(value: str, field: str) -> int:
    """A marketplace amount as a decimal string of yuan ("59.90") → fen; at most two
    decimals, never negative, no floats on the way."""
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidArgument.field(field, "must be a decimal amount like 59.90") from exc
    if not amount.is_finite() or amount < 0:
        raise InvalidArgument.field(field, "must be a non-negative amount")
    minor = amount * 100
    if minor != minor.to_integral_value():
        raise InvalidArgument.field(field, "has more than two decimals")
    return int(minor)


def order_lines(lines: Iterable[Line], currency: str) -> tuple[list[order_pb2.OrderLine], int]:
    built: list[order_pb2.OrderLine] = []
    total = 0
    for index, line in enumerate(lines, start=1):
        line_total = line.unit_price_minor * line.quantity - line.discount_minor
        if line_total < 0:
            raise InvalidArgument.field(
                f"lines[{index - 1}].discount", "is larger than the line amount"
            )
        total += line_total
        built.append(
            order_pb2.OrderLine(
                line_id=str(index),
                sku_code=line.sku_code,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor, currency),
                discount=money(line.discount_minor, currency),
                line_total=money(line_total, currency),
            )
        )
    return built, total


def address(a: AddressIn | None) -> order_pb2.Address | None:
    if a is None:
        return None
    return order_pb2.Address(
        province=a.province,
        city=a.city,
        district=a.district,
        street=a.street,
        postal_code=a.postal_code,
        latitude=a.latitude,
        longitude=a.longitude,
    )


def build_order(
    *,
    channel_id: str,
    kind: int,
    channel_order_id: str,
    mode: int,
    lines: Iterable[Line],
    currency: str = CURRENCY,
    member_id: str = "",
    guest_contact: str = "",
    selling_store_id: str = "",
    selling_guide_staff_id: str = "",
    referring_guide_code: str = "",
    pickup_store_id: str = "",
    delivery_address: AddressIn | None = None,
    handover: int = 0,
    stock_channel: str = "",
    expected_total_minor: int | None = None,
    total_field: str = "total",
) -> order_pb2.Order:
    built, total = order_lines(lines, currency)
    if expected_total_minor is not None and expected_total_minor != total:
        raise InvalidArgument.field(
            total_field, f"is {expected_total_minor} but the lines add up to {total}"
        )
    order = order_pb2.Order(
        channel_id=channel_id,
        channel_kind=kind,  # type: ignore[arg-type]
        channel_order_id=channel_order_id,
        member_id=member_id,
        guest_contact=guest_contact,
        fulfilment_mode=mode,  # type: ignore[arg-type]
        endless_aisle_handover=handover,  # type: ignore[arg-type]
        selling_store_id=selling_store_id,
        selling_guide_staff_id=selling_guide_staff_id,
        referring_guide_code=referring_guide_code,
        pickup_store_id=pickup_store_id,
        lines=built,
        total=money(total, currency),
        stock_channel=stock_channel or channel_id,
    )
    addr = address(delivery_address)
    if addr is not None:
        order.delivery_address.CopyFrom(addr)
    return order


def require(condition: bool, field: str, description: str, found: list[FieldViolation]) -> None:
    if not condition:
        found.append(FieldViolation(field, description))


def raise_if(found: list[FieldViolation]) -> None:
    if found:
        raise InvalidArgument(found)
