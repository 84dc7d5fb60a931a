"""Own web mall and WeChat mini program connector: the platform's own order format, in fen.
Guide showroom links carry the signed guide code. Sample: samples/web_mall.json."""

from __future__ import annotations

from typing import Literal

from omni.order.v1 import order_pb2
from pydantic import Field

from libs.errors import InvalidArgument
from services.gateway.connectors.common import CURRENCY, AddressIn, Line, Strict, build_order


class MallItemIn(Strict):
    sku_code: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=10_000)
    unit_price: int = Field(ge=0, le=10**10, description="fen")
    discount: int = Field(default=0, ge=0, le=10**12, description="fen, on the whole line")


class MallOrderIn(Strict):
    order_no: str = Field(min_length=1, max_length=64)
    member_id: str = Field(default="", max_length=64)
    guest_contact: str = Field(default="", max_length=128)
    fulfilment: Literal["express", "same_city", "pickup", "guide_delivery"]
    pickup_store_id: str = Field(default="", max_length=64)
    guide_store_id: str = Field(
        default="", max_length=64, description="guide delivery: the guide's store (location)"
    )
    guide_staff_id: str = Field(
        default="", max_length=64, description="guide delivery: the guide (工号) who brings it"
    )
    guide_code: str = Field(default="", max_length=256, description="signed showroom code")
    delivery_address: AddressIn | None = None
    currency: str = Field(default=CURRENCY, pattern="^[A-Z]{3}$")
    items: list[MallItemIn] = Field(min_length=1, max_length=200)
    total: int = Field(ge=0, le=10**12, description="fen; must equal the items")


_MODES = {
    "express": order_pb2.FULFILMENT_MODE_EXPRESS_DELIVERY,
    "same_city": order_pb2.FULFILMENT_MODE_SAME_CITY_DELIVERY,
    "pickup": order_pb2.FULFILMENT_MODE_STORE_PICKUP,
    "guide_delivery": order_pb2.FULFILMENT_MODE_GUIDE_DELIVERY,
}


def mall_order(channel_id: str, payload: MallOrderIn) -> order_pb2.Order:
    """Pickup needs a store, delivery an address, a guest a contact; a guide delivery (导购
    上门) the guide and the guide's store, which the goods leave from."""
    if payload.fulfilment == "pickup" and not payload.pickup_store_id:
        raise InvalidArgument.field("pickup_store_id", "is required for pickup")
    guided = payload.fulfilment == "guide_delivery"
    if guided and not payload.guide_store_id:
        raise InvalidArgument.field("guide_store_id", "is required for guide delivery")
    if guided and not payload.guide_staff_id:
        raise InvalidArgument.field("guide_staff_id", "is required for guide delivery")
    if not guided and (payload.guide_store_id or payload.guide_staff_id):
        raise InvalidArgument.field("guide_store_id", "only applies to guide delivery")
    if payload.fulfilment != "pickup" and payload.delivery_address is None:
        raise InvalidArgument.field("delivery_address", "is required for delivery")
    if not payload.member_id and not payload.guest_contact:
        raise InvalidArgument.field("guest_contact", "is required without a member_id")
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_OWN_ONLINE,
        channel_order_id=payload.order_no,
        mode=_MODES[payload.fulfilment],
        lines=[Line(i.sku_code, i.quantity, i.unit_price, i.discount) for i in payload.items],
        currency=payload.currency,
        member_id=payload.member_id,
        guest_contact=payload.guest_contact,
        referring_guide_code=payload.guide_code,
        selling_store_id=payload.guide_store_id,
        selling_guide_staff_id=payload.guide_staff_id,
        pickup_store_id=payload.pickup_store_id,
        delivery_address=payload.delivery_address,
        expected_total_minor=payload.total,
    )


def stock_message(sku_code: str, external_sku_id: str, available: int) -> dict[str, object]:
    return {"type": "stock", "sku_code": sku_code, "available": available}
