"""Distributor shop connector: a distributor's (or dealer's) own web shop submits orders on
its channel, with any guide code. The platform order has no distributor field (the channel
identifies the distributor; the gateway keeps the submitting partner with the order).
Sample: samples/distributor.json."""

from __future__ import annotations

from typing import Literal

from omni.order.v1 import order_pb2
from pydantic import Field

from services.gateway.connectors.common import CURRENCY, AddressIn, Line, Strict, build_order


class ShopLineIn(Strict):
    sku_code: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=10_000)
    unit_price: int = Field(ge=0, le=10**10, description="fen")


# A partner's order id reaches the order service as "<partner id>/<shop order id>" (unique
# per partner on a shared channel); partner ids have no "/", and shop order ids may not
# either, so no two submitters' ids can ever meet.
SHOP_ORDER_ID = r"^[^/\x00-\x1f\x7f]+$"


class ShopOrderIn(Strict):
    shop_order_id: str = Field(
        min_length=1, max_length=64, pattern=SHOP_ORDER_ID, description="no '/'"
    )
    distributor_id: str = Field(min_length=1, max_length=64, description="the org unit selling")
    member_id: str = Field(default="", max_length=64)
    guest_contact: str = Field(default="", max_length=128)
    guide_code: str = Field(default="", max_length=256)
    fulfilment: Literal["express", "same_city"] = "express"
    delivery_address: AddressIn
    currency: str = Field(default=CURRENCY, pattern="^[A-Z]{3}$")
    lines: list[ShopLineIn] = Field(min_length=1, max_length=200)
    total: int = Field(ge=0, le=10**12)


def partner_order_id(partner_id: str, shop_order_id: str) -> str:
    """The channel order id of a partner's order: unique per partner, not only per channel
    (two distributors on one channel may both number their orders from 1)."""
    return f"{partner_id}/{shop_order_id}" if partner_id else shop_order_id


def own_order_id(partner_id: str, channel_order_id: str) -> str:
    """The id the submitter knows its order by (the inverse of ``partner_order_id``)."""
    return channel_order_id.removeprefix(f"{partner_id}/") if partner_id else channel_order_id


def shop_order(channel_id: str, payload: ShopOrderIn, partner_id: str = "") -> order_pb2.Order:
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_DISTRIBUTION,
        channel_order_id=partner_order_id(partner_id, payload.shop_order_id),
        mode=(
            order_pb2.FULFILMENT_MODE_SAME_CITY_DELIVERY
            if payload.fulfilment == "same_city"
            else order_pb2.FULFILMENT_MODE_EXPRESS_DELIVERY
        ),
        lines=[Line(x.sku_code, x.quantity, x.unit_price) for x in payload.lines],
        currency=payload.currency,
        member_id=payload.member_id,
        guest_contact=payload.guest_contact
        or ("" if payload.member_id else payload.distributor_id),
        referring_guide_code=payload.guide_code,
        delivery_address=payload.delivery_address,
        expected_total_minor=payload.total,
    )


def stock_message(sku_code: str, external_sku_id: str, available: int) -> dict[str, object]:
    return {"type": "stock", "sku_code": sku_code, "available": available}
