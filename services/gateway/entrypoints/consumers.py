"""Platform events → queued pushes (thin: translate, call the outbound use case).

Bulk: stock, price and listing changes of a batch are queued together on the batch's
asyncpg transaction (a SKU's stock changes in one batch are one write per channel). Order
statuses are queued inside a session, with the channel order's status (moved forward by the
inbound side's use case), a run of them at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omni.catalog.v1 import events_pb2 as catalog_events
from omni.common.v1 import envelope_pb2
from omni.inventory.v1 import events_pb2 as inventory_events
from omni.order.v1 import events_pb2 as order_events

from libs.consumer import Bulk, BulkInSession, Delivery
from libs.pg import PgTransaction
from libs.service_app import ConsumerSpec
from libs.unit_of_work import UnitOfWork
from services.gateway.adapters.push_repository import PushRepository
from services.gateway.adapters.push_store import PgPushStore
from services.gateway.service_layer import inbound, outbound


def _time(envelope: envelope_pb2.EventEnvelope) -> datetime:
    return envelope.occurred_at.ToDatetime(tzinfo=UTC)


async def on_stock_changed(
    tx: PgTransaction, deliveries: Sequence[Delivery[inventory_events.StockChangedEvent]]
) -> None:
    """A location's ATP changed: every channel whose stock channel the location serves gets
    a (coalesced) stock push for the SKU."""
    await outbound.queue_stock_changes(
        PgPushStore(tx.conn),
        [
            outbound.StockChange(
                d.event.stock_level.sku_code,
                tuple(d.event.channels),
                _time(d.envelope),
                d.trace_context,
            )
            for d in deliveries
        ],
    )


async def on_price_changed(
    tx: PgTransaction, deliveries: Sequence[Delivery[catalog_events.PriceChangedEvent]]
) -> None:
    """A channel rule concerns one channel; a list or regional price may change every
    channel's price, so every pushing channel re-reads it."""
    await outbound.queue_changes(
        PgPushStore(tx.conn),
        [
            outbound.Change(
                (d.event.channel_rule.channel_id,)
                if d.event.WhichOneof("change") == "channel_rule"
                else None,
                "price",
                d.event.sku_code,
                {"sku_code": d.event.sku_code},
                _time(d.envelope),
                d.trace_context,
            )
            for d in deliveries
        ],
    )


def _listing(delivery: Delivery[catalog_events.AssortmentChangedEvent]) -> outbound.Change:
    entry = delivery.event.entry
    facts: dict[str, object] = {"type": "listing", "sku_code": entry.sku_code}
    if entry.HasField("sellable_from"):
        facts["sellable_from"] = entry.sellable_from.ToDatetime().isoformat() + "Z"
    if entry.HasField("sellable_until"):
        facts["sellable_until"] = entry.sellable_until.ToDatetime().isoformat() + "Z"
    return outbound.Change(
        (entry.channel_id,),
        "listing",
        entry.sku_code,
        facts,
        _time(delivery.envelope),
        delivery.trace_context,
    )


async def on_assortment_changed(
    tx: PgTransaction, deliveries: Sequence[Delivery[catalog_events.AssortmentChangedEvent]]
) -> None:
    await outbound.queue_changes(PgPushStore(tx.conn), [_listing(d) for d in deliveries])


def status_subject(order_id: str, part: str = "") -> str:
    """What an order-status push coalesces on: the order for order-wide news (completed,
    cancelled), one fulfilment order or one return for theirs — so the two shipments of a
    split order are two pushes, each with its own tracking number."""
    return f"{order_id}/{part}" if part else order_id


@dataclass(frozen=True)
class StatusNews:
    order_id: str
    status: str
    extra: dict[str, object]
    part: str = ""


def _completed(event: order_events.OrderCompletedEvent) -> StatusNews:
    return StatusNews(event.order.order_id, "completed", {})


def _cancelled(event: order_events.OrderCancelledEvent) -> StatusNews:
    return StatusNews(event.order.order_id, "cancelled", {"reason": event.reason})


def _shipped(event: order_events.FulfilmentShippedEvent) -> StatusNews:
    f = event.fulfilment_order
    extra: dict[str, object] = {
        "fulfilment_id": f.fulfilment_id,
        "tracking": f.assignee,
        "from_location_id": f.location_id,
    }
    return StatusNews(f.order_id, "shipped", extra, f.fulfilment_id)


def _ready_for_pickup(event: order_events.FulfilmentReadyForPickupEvent) -> StatusNews:
    f = event.fulfilment_order
    extra: dict[str, object] = {
        "fulfilment_id": f.fulfilment_id,
        "pickup_store_id": f.handover_store_id,
    }
    return StatusNews(f.order_id, "ready_for_pickup", extra, f.fulfilment_id)


def _returned(event: order_events.OrderReturnReceivedEvent) -> StatusNews:
    extra: dict[str, object] = {
        "return_id": event.return_id,
        "refund_minor": event.refund_total.amount_minor,
    }
    return StatusNews(event.order_id, "returned", extra, f"return/{event.return_id}")


def _order_status(news_of: Callable[[Any], StatusNews]) -> BulkInSession:
    """Orders the gateway took: move each one's status forward and tell the channel it came
    from (a status that is not a step forward, or an order not ours, tells nobody)."""

    async def apply(uow: UnitOfWork, deliveries: Sequence[Delivery[Any]]) -> None:
        changes: list[outbound.Change] = []
        for delivery in deliveries:
            news = news_of(delivery.event)
            accepted = await inbound.set_order_status(uow.session, news.order_id, news.status)
            if accepted is None:
                continue
            facts: dict[str, object] = {
                "type": "order_status",
                "channel_order_id": accepted.channel_order_id,
                "status": news.status,
                **news.extra,
            }
            if accepted.partner_id:
                facts["partner_id"] = accepted.partner_id
            changes.append(
                outbound.Change(
                    (accepted.channel_id,),
                    "order_status",
                    status_subject(news.order_id, news.part),
                    facts,
                    _time(delivery.envelope),
                    delivery.trace_context,
                )
            )
        if changes:
            await outbound.queue_changes(PushRepository(uow.session), changes)

    return BulkInSession(apply)


on_order_completed = _order_status(_completed)
on_return_received = _order_status(_returned)
on_fulfilment_shipped = _order_status(_shipped)
on_ready_for_pickup = _order_status(_ready_for_pickup)
on_order_cancelled = _order_status(_cancelled)


def consumer_specs() -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            "channel-sync",
            ["inventory", "order", "catalog"],
            {
                inventory_events.StockChangedEvent: Bulk(on_stock_changed),
                order_events.OrderCompletedEvent: on_order_completed,
                order_events.OrderReturnReceivedEvent: on_return_received,
                order_events.FulfilmentShippedEvent: on_fulfilment_shipped,
                order_events.FulfilmentReadyForPickupEvent: on_ready_for_pickup,
                order_events.OrderCancelledEvent: on_order_cancelled,
                catalog_events.PriceChangedEvent: Bulk(on_price_changed),
                catalog_events.AssortmentChangedEvent: Bulk(on_assortment_changed),
            },
        )
    ]
