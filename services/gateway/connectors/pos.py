"""POS connector: store sales, endless-aisle orders from the kiosk, member-code scans and
returns at the counter. Prices are in fen as integers (POS systems here keep minor units).
Sample payloads: samples/pos.json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.order.v1 import order_pb2
from pydantic import Field

from libs.errors import InvalidArgument
from services.gateway.connectors.common import CURRENCY, AddressIn, Line, Strict, build_order


class PosLineIn(Strict):
    sku_code: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=10_000)
    unit_price: int = Field(ge=0, le=10**10, description="fen")
    discount: int = Field(default=0, ge=0, le=10**12, description="fen, on the whole line")


class PosSaleIn(Strict):
    sale_id: str = Field(min_length=1, max_length=64, description="the POS receipt number")
    store_id: str = Field(min_length=1, max_length=64)
    staff_id: str = Field(default="", max_length=64, description="the guide (工号) who sold")
    member_id: str = Field(default="", max_length=64)
    currency: str = Field(default=CURRENCY, pattern="^[A-Z]{3}$")
    lines: list[PosLineIn] = Field(min_length=1, max_length=200)
    total: int = Field(ge=0, le=10**12, description="fen; must equal the lines")


class EndlessAisleIn(PosSaleIn):
    handover: Literal["delivery", "pickup_in_store", "guide"]
    delivery_address: AddressIn | None = None


class MemberScanIn(Strict):
    store_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=128, description="the dynamic member code")


class MemberSignUpIn(Strict):
    """A customer joins at the till with a guide (导购拉新): the guide becomes the owner."""

    phone: str = Field(min_length=5, max_length=20, pattern=r"^\+?[0-9]+$")
    name: str = Field(default="", max_length=64)
    store_id: str = Field(min_length=1, max_length=64)
    guide_staff_id: str = Field(min_length=1, max_length=64)


class ReturnLineIn(Strict):
    line_id: str = Field(
        min_length=1,
        max_length=64,
        description="the platform order line id, or the receipt line number (1 = first line)",
    )
    quantity: int = Field(gt=0, le=10_000)
    condition: Literal["resaleable", "damaged"] = "resaleable"


class CounterReturnIn(Strict):
    return_id: str = Field(min_length=1, max_length=64)
    store_id: str = Field(min_length=1, max_length=64, description="where the goods came back")
    order_id: str = Field(min_length=1, max_length=64, description="the platform order id")
    staff_id: str = Field(default="", max_length=64)
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=200)


class FulfilmentUpdateIn(Strict):
    """The store's work on a fulfilment order routed to it (an online order it ships, hands
    over or has its guide deliver — O2O): the goods left (with the courier's tracking
    number, or the guide), are ready at the counter, or reached the customer."""

    store_id: str = Field(min_length=1, max_length=64, description="the store reporting")
    order_id: str = Field(min_length=1, max_length=64, description="the platform order id")
    fulfilment_id: str = Field(min_length=1, max_length=64)
    action: Literal["shipped", "ready_for_pickup", "picked_up", "delivered"]
    tracking: str = Field(
        default="", max_length=128, description="courier tracking number or guide staff id"
    )


def may_report(action: str, location_id: str, handover_store_id: str, store_id: str) -> bool:
    """Which store may report what: the goods leave from the fulfilling location; they are
    ready and picked up at the handover store; a delivery is confirmed by either (the
    shipping store, or the guide's store)."""
    if action == "shipped":
        return store_id == location_id
    if action in ("ready_for_pickup", "picked_up"):
        return store_id == handover_store_id
    return store_id in (location_id, handover_store_id)


@dataclass(frozen=True)
class ReturnCommand:
    """A return received at a counter, for the order service (any store may take it; the
    order service works out the refund per line)."""

    channel_id: str
    return_id: str
    order_id: str
    receiving_location_id: str
    # (line id, quantity, resaleable)
    lines: tuple[tuple[str, int, bool], ...]


_HANDOVER = {
    "delivery": order_pb2.ENDLESS_AISLE_HANDOVER_DELIVERY,
    "pickup_in_store": order_pb2.ENDLESS_AISLE_HANDOVER_PICKUP_IN_SELLING_STORE,
    "guide": order_pb2.ENDLESS_AISLE_HANDOVER_GUIDE,
}


def _lines(payload: PosSaleIn) -> list[Line]:
    return [Line(x.sku_code, x.quantity, x.unit_price, x.discount) for x in payload.lines]


def _walk_in(payload: PosSaleIn) -> str:
    """A customer without a member code is a walk-in of the store."""
    return "" if payload.member_id else f"walk-in:{payload.store_id}"


def store_sale(channel_id: str, payload: PosSaleIn) -> order_pb2.Order:
    """A sale carried out at the till: fulfilled on the spot by the selling store."""
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_STORE,
        channel_order_id=payload.sale_id,
        mode=order_pb2.FULFILMENT_MODE_STORE_SALE,
        lines=_lines(payload),
        currency=payload.currency,
        member_id=payload.member_id,
        guest_contact=_walk_in(payload),
        selling_store_id=payload.store_id,
        selling_guide_staff_id=payload.staff_id,
        expected_total_minor=payload.total,
    )


def endless_aisle(channel_id: str, payload: EndlessAisleIn) -> order_pb2.Order:
    """Sold in a store that lacks the item; fulfilled elsewhere, the selling store and guide
    keep the sale. Delivery needs an address."""
    if payload.handover == "delivery" and payload.delivery_address is None:
        raise InvalidArgument.field("delivery_address", "is required for handover delivery")
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_STORE,
        channel_order_id=payload.sale_id,
        mode=order_pb2.FULFILMENT_MODE_ENDLESS_AISLE,
        handover=_HANDOVER[payload.handover],
        lines=_lines(payload),
        currency=payload.currency,
        member_id=payload.member_id,
        guest_contact=_walk_in(payload),
        selling_store_id=payload.store_id,
        selling_guide_staff_id=payload.staff_id,
        pickup_store_id=payload.store_id if payload.handover == "pickup_in_store" else "",
        delivery_address=payload.delivery_address,
        expected_total_minor=payload.total,
    )


def counter_return(channel_id: str, payload: CounterReturnIn) -> ReturnCommand:
    """A return at any store's counter: the goods are restocked where they came back."""
    seen: set[str] = set()
    for index, line in enumerate(payload.lines):
        if line.line_id in seen:
            raise InvalidArgument.field(f"lines[{index}].line_id", "is listed twice")
        seen.add(line.line_id)
    return ReturnCommand(
        channel_id=channel_id,
        return_id=payload.return_id,
        order_id=payload.order_id,
        receiving_location_id=payload.store_id,
        lines=tuple((x.line_id, x.quantity, x.condition == "resaleable") for x in payload.lines),
    )


def platform_lines(
    lines: tuple[tuple[str, int, bool], ...], order_line_ids: list[str]
) -> list[tuple[str, int, bool]]:
    """The POS knows its receipt lines by number; the platform by its own line ids. A
    platform id is kept, a receipt number (1-based) becomes the id of that line."""
    mapped: list[tuple[str, int, bool]] = []
    for index, (line_id, quantity, resaleable) in enumerate(lines):
        if line_id not in order_line_ids:
            if not (line_id.isdigit() and 1 <= int(line_id) <= len(order_line_ids)):
                raise InvalidArgument.field(f"lines[{index}].line_id", "is not a line of the order")
            line_id = order_line_ids[int(line_id) - 1]
        mapped.append((line_id, quantity, resaleable))
    return mapped


def stock_message(sku_code: str, external_sku_id: str, available: int) -> dict[str, object]:
    return {"type": "stock", "sku_code": sku_code, "available": available}
