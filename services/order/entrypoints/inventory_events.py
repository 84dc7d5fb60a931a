"""Inventory's events as the order service needs them: new stock wakes unfillable orders;
a hold that inventory expired on its own cancels the unpaid order it belonged to.

Handlers only change rows (inside the consumer's transaction, no peer calls); the
background task routes woken orders and finishes cancellations. A stock change that did not
make stock available (a hold, a sale) cannot wake anybody and is passed over.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message
from omni.common.v1 import envelope_pb2
from omni.inventory.v1 import events_pb2 as inv_events

from libs.consumer import Handler
from libs.unit_of_work import UnitOfWork
from services.order.adapters import order_store
from services.order.service_layer import unit_of_work
from services.order.service_layer.orders import hold_expired

# Causes that only ever take availability away.
NEVER_WAKES = frozenset({"reserved", "sale"})


async def on_stock_changed(
    uow: UnitOfWork, event: inv_events.StockChangedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    if event.stock_level.available > 0 and event.cause not in NEVER_WAKES:
        joined = await unit_of_work.joining(uow)
        await order_store.flag_unfillable_with_skus(joined.conn, [event.stock_level.sku_code])


async def on_reservation_expired(
    uow: UnitOfWork,
    event: inv_events.ReservationExpiredEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    await hold_expired(await unit_of_work.joining(uow), event.reservation.order_id)


SUBSCRIPTIONS: Mapping[type[Message], Handler] = {
    inv_events.StockChangedEvent: on_stock_changed,
    inv_events.ReservationExpiredEvent: on_reservation_expired,
}
