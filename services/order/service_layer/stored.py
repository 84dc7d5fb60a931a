"""An order as stored, seen again as the channel's request (for routing and for telling a
duplicate capture from a different order with the same channel order id)."""

from __future__ import annotations

from typing import Any

from services.order.adapters.repository import OrderRow
from services.order.domain.orders import Address, AisleHandover, Mode, NewLine, NewOrder, Payment


def stored_new_order(row: OrderRow, lines: list[dict[str, Any]]) -> NewOrder:
    address = row["address"]
    return NewOrder(
        channel_id=row["channel_id"],
        channel_kind=str(row["channel_kind"]),
        channel_order_id=row["channel_order_id"],
        member_id=row["member_id"],
        guest_contact=row["guest_contact"],
        mode=Mode(row["mode"]),
        aisle_handover=AisleHandover(row["aisle_handover"]),
        selling_store_id=row["selling_store_id"],
        selling_guide_staff_id=row["selling_guide_staff_id"],
        referring_guide_code=row["referring_guide_code"],
        pickup_store_id=row["pickup_store_id"],
        address=Address(**address) if address else None,
        lines=tuple(
            NewLine(
                sku_code=line["sku_code"],
                quantity=line["quantity"],
                unit_price_minor=line["unit_price_minor"],
                discount_minor=line["discount_minor"],
                currency=row["currency"],
            )
            for line in lines
        ),
        payment=Payment(row["payment"]),
        stock_channel=row["stock_channel"],
    )
