"""What an order is when captured, the checks on it, and the money rules (totals, refunds)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from enum import Enum

from libs.errors import InvalidArgument, Validator
from libs.proto_input import check_int64
from services.order.domain.routing import Capability, Strategy


class Mode(Enum):
    STORE_SALE = "store_sale"
    EXPRESS_DELIVERY = "express_delivery"
    SAME_CITY_DELIVERY = "same_city_delivery"
    STORE_PICKUP = "store_pickup"
    GUIDE_DELIVERY = "guide_delivery"
    ENDLESS_AISLE = "endless_aisle"


class AisleHandover(Enum):
    NONE = "none"
    DELIVERY = "delivery"
    PICKUP_IN_SELLING_STORE = "pickup_in_selling_store"
    GUIDE = "guide"


class Payment(Enum):
    AWAITING = "awaiting_payment"
    PAID_ONLINE = "paid_online"
    PAID_AT_POS = "paid_at_pos"


@dataclass(frozen=True)
class Address:
    province: str = ""
    city: str = ""
    district: str = ""
    street: str = ""
    postal_code: str = ""
    latitude: float = 0.0
    longitude: float = 0.0

    @property
    def has_coordinates(self) -> bool:
        # (0, 0) is in the Gulf of Guinea: no customer of ours lives there, it means "unset".
        return not (self.latitude == 0.0 and self.longitude == 0.0)


@dataclass(frozen=True)
class NewLine:
    sku_code: str
    quantity: int
    unit_price_minor: int
    discount_minor: int
    currency: str
    # The discount's own currency as sent (empty when no discount was sent); only checked,
    # never stored, so it is no part of the order's content (fingerprint, differences).
    discount_currency: str = field(default="", compare=False)


@dataclass(frozen=True)
class NewOrder:
    channel_id: str
    channel_kind: str
    channel_order_id: str
    member_id: str
    guest_contact: str
    mode: Mode | None
    aisle_handover: AisleHandover
    selling_store_id: str
    selling_guide_staff_id: str
    referring_guide_code: str
    pickup_store_id: str
    address: Address | None
    lines: tuple[NewLine, ...]
    payment: Payment | None
    stock_channel: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def currency(self) -> str:
        return self.lines[0].currency if self.lines else ""

    def fingerprint(self) -> str:
        """The content of the order as the channel sent it (payment state excluded: a
        channel re-sending a now-paid order is the same order)."""
        body = asdict(self)
        body.pop("payment")
        body.pop("extra")
        for line in body["lines"]:
            line.pop("discount_currency")
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


MAX_LINES = 100
# Identifiers go into indexed columns (a btree entry holds at most ~2.7 kB) and into the
# ids of inventory calls: anything longer than this is not an id but a mistake.
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 500
# Channel ids and inventory channels / location groups (the inventory API's own rule).
CHANNEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


def line_id(index: int) -> str:
    return f"L{index + 1}"


def line_total(unit_price_minor: int, quantity: int, discount_minor: int) -> int:
    return unit_price_minor * quantity - discount_minor


def validate(order: NewOrder) -> None:
    """Field checks that need nothing but the request (unknown SKUs are checked against
    inventory by the service layer)."""
    v = Validator()
    v.check(bool(order.channel_id), "channel_id", "is required")
    if order.channel_id:
        v.check(
            bool(CHANNEL_PATTERN.match(order.channel_id)),
            "channel_id",
            "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
        )
    if order.stock_channel and order.stock_channel != order.channel_id:
        v.check(
            bool(CHANNEL_PATTERN.match(order.stock_channel)),
            "stock_channel",
            "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
        )
    v.check(bool(order.channel_order_id), "channel_order_id", "is required")
    for name in (
        "channel_order_id",
        "member_id",
        "selling_store_id",
        "selling_guide_staff_id",
        "pickup_store_id",
    ):
        v.check(
            len(getattr(order, name)) <= MAX_ID_LENGTH,
            name,
            f"must be at most {MAX_ID_LENGTH} characters",
        )
    for name in ("guest_contact", "referring_guide_code"):
        v.check(
            len(getattr(order, name)) <= MAX_TEXT_LENGTH,
            name,
            f"must be at most {MAX_TEXT_LENGTH} characters",
        )
    v.check(order.mode is not None, "fulfilment_mode", "is required")
    v.check(order.payment is not None, "payment_state", "is required")
    v.check(bool(order.lines), "lines", "must have at least one line")
    v.check(len(order.lines) <= MAX_LINES, "lines", f"at most {MAX_LINES} lines")
    v.check(
        not (order.member_id and order.guest_contact),
        "guest_contact",
        "must be empty when member_id is set",
    )
    v.check(
        bool(order.member_id or order.guest_contact),
        "member_id",
        "a member id or a guest contact is required",
    )
    currencies = {line.currency for line in order.lines}
    order_total = 0
    for i, line in enumerate(order.lines):
        f = f"lines[{i}]"
        v.check(bool(line.sku_code), f"{f}.sku_code", "is required")
        v.check(
            len(line.sku_code) <= MAX_ID_LENGTH,
            f"{f}.sku_code",
            f"must be at most {MAX_ID_LENGTH} characters",
        )
        v.check(line.quantity > 0, f"{f}.quantity", "must be greater than 0")
        v.check(line.unit_price_minor >= 0, f"{f}.unit_price", "must not be negative")
        v.check(line.discount_minor >= 0, f"{f}.discount", "must not be negative")
        v.check(bool(line.currency), f"{f}.unit_price.currency_code", "is required")
        if line.currency:
            v.check(
                bool(CURRENCY_PATTERN.match(line.currency)),
                f"{f}.unit_price.currency_code",
                "must be an ISO 4217 code (three capital letters)",
            )
        # A discount without a currency is only accepted when there is no discount.
        v.check(
            line.discount_currency == line.currency
            or (not line.discount_currency and line.discount_minor == 0),
            f"{f}.discount.currency_code",
            f"must be the line's currency {line.currency}",
        )
        if line.quantity > 0 and line.unit_price_minor >= 0:
            gross = line.unit_price_minor * line.quantity
            check_int64(v, gross, f"{f}.unit_price")
            v.check(
                line.discount_minor <= gross,
                f"{f}.discount",
                "must not exceed unit_price x quantity",
            )
            order_total += max(0, gross - line.discount_minor)
    check_int64(v, order_total, "lines")
    v.check(len(currencies) <= 1, "lines", "all lines must use one currency")
    mode = order.mode
    address = order.address
    if address is not None:
        _check_address(v, address)
    needs_address = mode in {
        Mode.EXPRESS_DELIVERY,
        Mode.SAME_CITY_DELIVERY,
        Mode.GUIDE_DELIVERY,
    } or (
        mode is Mode.ENDLESS_AISLE
        and order.aisle_handover in {AisleHandover.DELIVERY, AisleHandover.GUIDE}
    )
    if needs_address:
        v.check(
            address is not None, "delivery_address", f"is required for {mode.value if mode else ''}"
        )
        if address is not None:
            v.check(bool(address.city), "delivery_address.city", "is required")
    if mode is Mode.SAME_CITY_DELIVERY and address is not None:
        v.check(
            address.has_coordinates,
            "delivery_address.latitude",
            "coordinates are required for same-city delivery",
        )
    if mode is Mode.STORE_PICKUP:
        v.check(bool(order.pickup_store_id), "pickup_store_id", "is required for store pickup")
    if mode in {Mode.STORE_SALE, Mode.GUIDE_DELIVERY, Mode.ENDLESS_AISLE}:
        v.check(
            bool(order.selling_store_id),
            "selling_store_id",
            f"is required for {mode.value if mode else ''}",
        )
    if mode in {Mode.GUIDE_DELIVERY} or (
        mode is Mode.ENDLESS_AISLE and order.aisle_handover is AisleHandover.GUIDE
    ):
        v.check(bool(order.selling_guide_staff_id), "selling_guide_staff_id", "is required")
    if mode is Mode.ENDLESS_AISLE:
        v.check(
            order.aisle_handover is not AisleHandover.NONE,
            "endless_aisle_handover",
            "is required for an endless-aisle sale",
        )
    elif order.aisle_handover is not AisleHandover.NONE:
        v.add("endless_aisle_handover", "only applies to endless-aisle sales")
    if mode is Mode.STORE_SALE and order.payment is Payment.AWAITING:
        v.add("payment_state", "a store sale is paid at the counter")
    v.raise_if_any()


def _check_address(v: Validator, address: Address) -> None:
    """Coordinates must be a real place (routing measures distances from them); text
    fields are bounded."""
    for name, value, bound in (
        ("latitude", address.latitude, 90.0),
        ("longitude", address.longitude, 180.0),
    ):
        v.check(
            math.isfinite(value) and -bound <= value <= bound,
            f"delivery_address.{name}",
            f"must be a number between {-bound:g} and {bound:g}",
        )
    for name in ("province", "city", "district", "street", "postal_code"):
        v.check(
            len(getattr(address, name)) <= MAX_TEXT_LENGTH,
            f"delivery_address.{name}",
            f"must be at most {MAX_TEXT_LENGTH} characters",
        )


@dataclass(frozen=True)
class RoutingPlan:
    """How routing sees an order of a given mode."""

    strategy: Strategy
    capability: Capability
    same_city_only: bool
    handover_store_id: str
    handover: str  # a state_machine.Handover value


def routing_plan(order: NewOrder) -> RoutingPlan:
    mode = order.mode
    h = order.aisle_handover
    if mode is Mode.STORE_SALE:
        return RoutingPlan(
            Strategy.AT_STORE, Capability.PICKUP, False, order.selling_store_id, "at_counter"
        )
    if mode is Mode.SAME_CITY_DELIVERY:
        return RoutingPlan(
            Strategy.SHIP_TO_CUSTOMER, Capability.SAME_CITY_DELIVERY, True, "", "same_city_rider"
        )
    if mode is Mode.STORE_PICKUP:
        return RoutingPlan(
            Strategy.BRING_TO_STORE, Capability.PICKUP, False, order.pickup_store_id, "store_pickup"
        )
    if mode is Mode.GUIDE_DELIVERY or (mode is Mode.ENDLESS_AISLE and h is AisleHandover.GUIDE):
        # The guide brings the goods from their store (transferred there when it lacks them).
        return RoutingPlan(
            Strategy.BRING_TO_STORE, Capability.TRANSFER, False, order.selling_store_id, "guide"
        )
    if mode is Mode.ENDLESS_AISLE and h is AisleHandover.PICKUP_IN_SELLING_STORE:
        return RoutingPlan(
            Strategy.BRING_TO_STORE,
            Capability.PICKUP,
            False,
            order.selling_store_id,
            "store_pickup",
        )
    # Express delivery, and endless aisle delivered to the customer.
    return RoutingPlan(Strategy.SHIP_TO_CUSTOMER, Capability.EXPRESS_SHIPPING, False, "", "courier")


def refund_for(line_total_minor: int, quantity: int, returned_before: int, returning: int) -> int:
    """The refund for returning ``returning`` more units of a line: the line total shared
    per unit so that returning every unit refunds exactly the line total (the rounding
    remainder goes with the last units)."""
    if returning <= 0 or returned_before < 0 or returned_before + returning > quantity:
        raise InvalidArgument.field("lines.quantity", "more units than were sold and not returned")
    after = line_total_minor * (returned_before + returning) // quantity
    before = line_total_minor * returned_before // quantity
    return after - before


def differences(new: NewOrder, stored: NewOrder) -> list[str]:
    """Which parts of a re-sent channel order differ from the captured one (by field)."""
    out: list[str] = []
    for name in (
        "channel_kind",
        "member_id",
        "guest_contact",
        "mode",
        "aisle_handover",
        "selling_store_id",
        "selling_guide_staff_id",
        "referring_guide_code",
        "pickup_store_id",
        "address",
        "stock_channel",
    ):
        if getattr(new, name) != getattr(stored, name):
            out.append(name)
    if len(new.lines) != len(stored.lines):
        out.append("lines")
    else:
        for i, (a, b) in enumerate(zip(new.lines, stored.lines, strict=True)):
            if a != b:
                out.append(f"lines[{i}]")
    return out
