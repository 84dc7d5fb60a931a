"""Local-life platform connector (review / group-buy apps): a voucher is paid online for a
designated store and consumed (核销) there later. The paid voucher becomes a store-pickup
order (the voucher code is kept as a digest); the redemption, with that code, hands the
goods over (domain/vouchers.py).
Sample: samples/local_life.json."""

from __future__ import annotations

from dataclasses import dataclass

from omni.order.v1 import order_pb2
from pydantic import Field

from services.gateway.connectors.common import CURRENCY, Line, Strict, build_order


class VoucherItemIn(Strict):
    sku_code: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100)
    price: int = Field(ge=0, le=10**10, description="fen per unit")


class VoucherOrderIn(Strict):
    voucher_order_id: str = Field(min_length=1, max_length=64)
    deal_id: str = Field(min_length=1, max_length=64)
    store_id: str = Field(min_length=1, max_length=64, description="where it is consumed")
    voucher_code: str = Field(
        min_length=4, max_length=64, description="the code the customer shows in the store"
    )
    user_phone: str = Field(min_length=3, max_length=32)
    member_id: str = Field(default="", max_length=64)
    items: list[VoucherItemIn] = Field(min_length=1, max_length=20)
    paid_amount: int = Field(ge=0, le=10**12, description="fen")


class RedemptionIn(Strict):
    voucher_order_id: str = Field(min_length=1, max_length=64)
    voucher_code: str = Field(min_length=1, max_length=64)
    store_id: str = Field(min_length=1, max_length=64)
    staff_id: str = Field(default="", max_length=64)


@dataclass(frozen=True)
class Redemption:
    """The voucher was consumed in a store: the order is handed over there."""

    channel_id: str
    voucher_order_id: str
    voucher_code: str
    store_id: str
    staff_id: str


def voucher_order(channel_id: str, payload: VoucherOrderIn) -> order_pb2.Order:
    return build_order(
        channel_id=channel_id,
        kind=order_pb2.CHANNEL_KIND_LOCAL_LIFE,
        channel_order_id=payload.voucher_order_id,
        mode=order_pb2.FULFILMENT_MODE_STORE_PICKUP,
        lines=[Line(i.sku_code, i.quantity, i.price) for i in payload.items],
        currency=CURRENCY,
        member_id=payload.member_id,
        guest_contact="" if payload.member_id else payload.user_phone,
        pickup_store_id=payload.store_id,
        expected_total_minor=payload.paid_amount,
        total_field="paid_amount",
    )


def redemption(channel_id: str, payload: RedemptionIn) -> Redemption:
    return Redemption(
        channel_id,
        payload.voucher_order_id,
        payload.voucher_code,
        payload.store_id,
        payload.staff_id,
    )


def stock_message(sku_code: str, external_sku_id: str, available: int) -> dict[str, object]:
    return {"type": "stock", "sku_code": sku_code, "available": available}
