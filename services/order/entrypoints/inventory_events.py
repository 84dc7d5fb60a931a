"""Inventory's events as the order service needs them: new stock wakes unfillable orders;
a hold that inventory expired on its own cancels the unpaid order it belonged to.

Handlers only change rows (inside the consumer's transaction, no peer calls); the
background task routes woken orders and finishes cancellations. The consumer drops the
inventory events order does not subscribe to (transfers) from their header, undecoded; the
stock changes of a batch are looked at together, so a SKU that changed a hundred times in
one batch wakes its orders with one statement, and a change that did not make stock
available (a hold, a sale) cannot wake anybody and is passed over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf.message import Message
from omni.common.v1 import envelope_pb2
from omni.inventory.v1 import events_pb2 as inv_events

from libs.consumer import BulkInSession, Delivery, Subscriber
from libs.unit_of_work import UnitOfWork
from services.order.adapters import order_store
from services.order.service_layer import unit_of_work
from services.order.service_layer.orders import hold_expired

# Causes that only ever take availability away.
NEVER_WAKES = frozenset({"reserved", "sale"})


async def on_stock_changed(
    uow: UnitOfWork, deliveries: Sequence[Delivery[inv_events.StockChangedEvent]]
) -> None:
    restocked = {
        d.event.stock_level.sku_code
        for d in deliveries
        if d.event.stock_level.available > 0 and d.event.cause not in NEVER_WAKES
    }
    if restocked:
        joined = await unit_of_work.joining(uow)
        await order_store.flag_unfillable_with_skus(joined.conn, sorted(restocked))


async def on_reservation_expired(
    uow: UnitOfWork,
    event: inv_events.ReservationExpiredEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    await hold_expired(await unit_of_work.joining(uow), event.reservation.order_id)


SUBSCRIPTIONS: Mapping[type[Message], Subscriber] = {
    inv_events.StockChangedEvent: BulkInSession(on_stock_changed),
    inv_events.ReservationExpiredEvent: on_reservation_expired,
}
