"""JD-style marketplace connector: numeric order ids, camelCase fields, consignee block,
amounts as yuan strings; SKU ids mapped through catalog like Tmall's. Signature: see
domain/signatures.py ``jd_sign`` (body signed as 360buy_param_json). Sample: samples/jd.json."""

from __future__ import annotations

from collections.abc import Mapping

from omni.order.v1 import order_pb2
from pydantic import Field

from libs.errors import FieldViolation, InvalidArgument
from services.gateway.connectors.common import AddressIn, Line, Strict, build_order, yuan_to_minor

AMOUNT = r"^\d{1,10}(\.\d{1,2})?$"


class JdConsigneeIn(Strict):
    province: str = Field(min_length=1, max_length=64)
    city: str = Field(min_length=1, max_length=64)
    county: str = Field(default="", max_length=64)
    fullAddress: str = Field(min_length=1, max_length=256)


class JdItemIn(Strict):
    skuId: str = Field(min_length=1, max_length=32)
    wareId: str = Field(default="", max_length=32)
    itemTotal: int = Field(gt=0, le=10_000)
    jdPrice: str = Field(pattern=AMOUNT)


class JdOrderIn(Strict):
    orderId: int = Field(gt=0, lt=10**18)
    orderPayment: str = Field(pattern=AMOUNT)
    consigneeInfo: JdConsigneeIn
    itemInfoList: list[JdItemIn] = Field(min_length=1, max_length=200)


def external_ids(payload: JdOrderIn) -> list[str]:
    return sorted({i.skuId for i in payload.itemInfoList})


def order(
    channel_id: str, payload: JdOrderIn, sku_by_external: Mapping[str, str]
) -> order_pb2.Order:
    unknown = [
        FieldViolation(
            f"itemInfoList[{i}].skuId", f"{x.skuId} is not mapped to a SKU of this channel"
        )
        for i, x in enumerate(payload.itemInfoList)
        if x.skuId not in sku_by_external
    ]
    if unknown:
        raise InvalidArgument(unknown)
    lines = [
        Line(
            sku_by_external[x.skuId],
            x.itemTotal,
            yuan_to_minor(x.jdPrice, f"itemInfoList[{i}].jdPrice"),
        )
        for i, x in enumerate(payload.itemInfoList)
    ]
    c = payload.consigneeInfo
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_MARKETPLACE,
        channel_order_id=str(payload.orderId),
        mode=order_pb2.FULFILMENT_MODE_EXPRESS_DELIVERY,
        lines=lines,
        guest_contact="jd",
        delivery_address=AddressIn(
            province=c.province, city=c.city, district=c.county, street=c.fullAddress
        ),
        expected_total_minor=yuan_to_minor(payload.orderPayment, "orderPayment"),
        total_field="orderPayment",
    )


def stock_message(sku_code: str, external_sku_id: str, available: int) -> dict[str, object]:
    return {"skuId": external_sku_id, "stockNum": available}
