"""Tmall/Taobao-style marketplace connector. The marketplace speaks in its own trade ids
(tid), item ids (num_iid) and SKU ids, with amounts as yuan strings; SKU ids are mapped to
our codes through catalog's batch mapping (ResolveChannelSkus), passed in here.
Signature: query parameters, see domain/signatures.py ``tmall_sign``. Sample:
samples/tmall.json."""

from __future__ import annotations

from collections.abc import Mapping

from omni.order.v1 import order_pb2
from pydantic import Field

from libs.errors import FieldViolation, InvalidArgument
from services.gateway.connectors.common import (
    AddressIn,
    Line,
    Strict,
    build_order,
    yuan_to_minor,
)

AMOUNT = r"^\d{1,10}(\.\d{1,2})?$"


class TmallSubOrderIn(Strict):
    oid: str = Field(min_length=1, max_length=32)
    num_iid: str = Field(min_length=1, max_length=32, description="marketplace item id")
    sku_id: str = Field(min_length=1, max_length=32, description="marketplace SKU id")
    num: int = Field(gt=0, le=10_000)
    price: str = Field(pattern=AMOUNT, description="yuan per unit")
    discount_fee: str = Field(default="0", pattern=AMOUNT, description="yuan on the line")


class TmallTradeIn(Strict):
    tid: str = Field(min_length=1, max_length=32, description="the marketplace trade id")
    buyer_open_uid: str = Field(default="", max_length=64)
    receiver_state: str = Field(min_length=1, max_length=64)
    receiver_city: str = Field(min_length=1, max_length=64)
    receiver_district: str = Field(default="", max_length=64)
    receiver_address: str = Field(min_length=1, max_length=256)
    receiver_zip: str = Field(default="", max_length=16)
    payment: str = Field(pattern=AMOUNT, description="yuan actually paid")
    orders: list[TmallSubOrderIn] = Field(min_length=1, max_length=200)


def external_ids(payload: TmallTradeIn) -> list[str]:
    return sorted({o.sku_id for o in payload.orders})


def trade(
    channel_id: str, payload: TmallTradeIn, sku_by_external: Mapping[str, str]
) -> order_pb2.Order:
    """A paid trade → an express order; every SKU id must be mapped, the paid amount must
    equal the lines."""
    unknown = [
        FieldViolation(f"orders[{i}].sku_id", f"{o.sku_id} is not mapped to a SKU of this channel")
        for i, o in enumerate(payload.orders)
        if o.sku_id not in sku_by_external
    ]
    if unknown:
        raise InvalidArgument(unknown)
    lines = [
        Line(
            sku_by_external[o.sku_id],
            o.num,
            yuan_to_minor(o.price, f"orders[{i}].price"),
            yuan_to_minor(o.discount_fee, f"orders[{i}].discount_fee"),
        )
        for i, o in enumerate(payload.orders)
    ]
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_MARKETPLACE,
        channel_order_id=payload.tid,
        mode=order_pb2.FULFILMENT_MODE_EXPRESS_DELIVERY,
        lines=lines,
        guest_contact=f"tmall:{payload.buyer_open_uid}" if payload.buyer_open_uid else "tmall",
        delivery_address=AddressIn(
            province=payload.receiver_state,
            city=payload.receiver_city,
            district=payload.receiver_district,
            street=payload.receiver_address,
            postal_code=payload.receiver_zip,
        ),
        expected_total_minor=yuan_to_minor(payload.payment, "payment"),
        total_field="payment",
    )


def stock_message(sku_code: str, external_sku_id: str, available: int) -> dict[str, object]:
    """taobao.item.quantity.update-style: their SKU id and the full quantity (type 1)."""
    return {"sku_id": external_sku_id, "quantity": available, "type": 1}
