"""Inventory's events as the order service needs them: new stock wakes unfillable orders;
a hold that inventory expired on its own cancels the unpaid order it belonged to.

Handlers only change rows (inside the consumer's transaction, no peer calls); the
background task routes woken orders and finishes cancellations. The consumer drops the
inventory events order does not subscribe to (transfers) from their header, undecoded; the
stock changes of a batch are looked at together, so a SKU that changed a hundred times in
one batch wakes its orders with one statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf.message import Message
from omni.common.v1 import envelope_pb2
from omni.inventory.v1 import events_pb2 as inv_events

from libs.consumer import BulkInSession, Delivery, Subscriber
from libs.unit_of_work import UnitOfWork
from services.order.adapters.repository import OrderRepository
from services.order.service_layer.orders import hold_expired


async def on_stock_changed(
    uow: UnitOfWork, deliveries: Sequence[Delivery[inv_events.StockChangedEvent]]
) -> None:
    restocked = {
        d.event.stock_level.sku_code for d in deliveries if d.event.stock_level.available > 0
    }
    repo = OrderRepository(uow.session)
    for sku_code in sorted(restocked):
        await repo.flag_unfillable_with_sku(sku_code)


async def on_reservation_expired(
    uow: UnitOfWork,
    event: inv_events.ReservationExpiredEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    await hold_expired(uow, event.reservation.order_id)


SUBSCRIPTIONS: Mapping[type[Message], Subscriber] = {
    inv_events.StockChangedEvent: BulkInSession(on_stock_changed),
    inv_events.ReservationExpiredEvent: on_reservation_expired,
}
