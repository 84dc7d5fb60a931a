"""Platform events → queued pushes (thin: pick the channels, call enqueue)."""

from __future__ import annotations

from datetime import UTC, datetime

from omni.catalog.v1 import events_pb2 as catalog_events
from omni.common.v1 import envelope_pb2
from omni.inventory.v1 import events_pb2 as inventory_events
from omni.order.v1 import events_pb2 as order_events

from libs.service_app import ConsumerSpec
from libs.unit_of_work import UnitOfWork
from services.gateway.service_layer import inbound, outbound


def _time(envelope: envelope_pb2.EventEnvelope) -> datetime:
    return envelope.occurred_at.ToDatetime(tzinfo=UTC)


async def on_stock_changed(
    uow: UnitOfWork, event: inventory_events.StockChangedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    """A location's ATP changed: every channel whose stock channel the location serves gets
    a (coalesced) stock push for the SKU."""
    targets = await outbound.pushing_channels(uow.session, stock_channels=list(event.channels))
    sku = event.stock_level.sku_code
    await outbound.enqueue(uow.session, targets, "stock", sku, {"sku_code": sku}, _time(envelope))


async def on_order_completed(
    uow: UnitOfWork, event: order_events.OrderCompletedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    await _order_status(uow, event.order.order_id, "completed", {}, envelope)


def status_subject(order_id: str, part: str = "") -> str:
    """What an order-status push coalesces on: the order for order-wide news (completed,
    cancelled), one fulfilment order or one return for theirs — so the two shipments of a
    split order are two pushes, each with its own tracking number."""
    return f"{order_id}/{part}" if part else order_id


async def _order_status(
    uow: UnitOfWork,
    order_id: str,
    status: str,
    extra: dict[str, object],
    envelope: envelope_pb2.EventEnvelope,
    part: str = "",
) -> None:
    """Orders the gateway took: record the status and tell the channel they came from."""
    accepted = await inbound.set_order_status(uow.session, order_id, status)
    if accepted is None:
        return
    targets = await outbound.pushing_channels(uow.session, channel_ids=[accepted.channel_id])
    facts: dict[str, object] = {
        "type": "order_status",
        "channel_order_id": accepted.channel_order_id,
        "status": status,
        **extra,
    }
    if accepted.partner_id:
        facts["partner_id"] = accepted.partner_id
    await outbound.enqueue(
        uow.session,
        targets,
        "order_status",
        status_subject(order_id, part),
        facts,
        _time(envelope),
    )


async def on_fulfilment_shipped(
    uow: UnitOfWork,
    event: order_events.FulfilmentShippedEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    f = event.fulfilment_order
    extra: dict[str, object] = {
        "fulfilment_id": f.fulfilment_id,
        "tracking": f.assignee,
        "from_location_id": f.location_id,
    }
    await _order_status(uow, f.order_id, "shipped", extra, envelope, f.fulfilment_id)


async def on_ready_for_pickup(
    uow: UnitOfWork,
    event: order_events.FulfilmentReadyForPickupEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    f = event.fulfilment_order
    extra: dict[str, object] = {
        "fulfilment_id": f.fulfilment_id,
        "pickup_store_id": f.handover_store_id,
    }
    await _order_status(uow, f.order_id, "ready_for_pickup", extra, envelope, f.fulfilment_id)


async def on_order_cancelled(
    uow: UnitOfWork,
    event: order_events.OrderCancelledEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    await _order_status(uow, event.order.order_id, "cancelled", {"reason": event.reason}, envelope)


async def on_return_received(
    uow: UnitOfWork,
    event: order_events.OrderReturnReceivedEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    extra: dict[str, object] = {
        "return_id": event.return_id,
        "refund_minor": event.refund_total.amount_minor,
    }
    await _order_status(
        uow, event.order_id, "returned", extra, envelope, f"return/{event.return_id}"
    )


async def on_price_changed(
    uow: UnitOfWork, event: catalog_events.PriceChangedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    """A channel rule concerns one channel; a list or regional price may change every
    channel's price, so every pushing channel re-reads it."""
    if event.WhichOneof("change") == "channel_rule":
        targets = await outbound.pushing_channels(
            uow.session, channel_ids=[event.channel_rule.channel_id]
        )
    else:
        targets = await outbound.pushing_channels(uow.session)
    await outbound.enqueue(
        uow.session, targets, "price", event.sku_code, {"sku_code": event.sku_code}, _time(envelope)
    )


async def on_assortment_changed(
    uow: UnitOfWork,
    event: catalog_events.AssortmentChangedEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    entry = event.entry
    targets = await outbound.pushing_channels(uow.session, channel_ids=[entry.channel_id])
    facts: dict[str, object] = {"type": "listing", "sku_code": entry.sku_code}
    if entry.HasField("sellable_from"):
        facts["sellable_from"] = entry.sellable_from.ToDatetime().isoformat() + "Z"
    if entry.HasField("sellable_until"):
        facts["sellable_until"] = entry.sellable_until.ToDatetime().isoformat() + "Z"
    await outbound.enqueue(uow.session, targets, "listing", entry.sku_code, facts, _time(envelope))


def consumer_specs() -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            "channel-sync",
            ["inventory", "order", "catalog"],
            {
                inventory_events.StockChangedEvent: on_stock_changed,
                order_events.OrderCompletedEvent: on_order_completed,
                order_events.OrderReturnReceivedEvent: on_return_received,
                order_events.FulfilmentShippedEvent: on_fulfilment_shipped,
                order_events.FulfilmentReadyForPickupEvent: on_ready_for_pickup,
                order_events.OrderCancelledEvent: on_order_cancelled,
                catalog_events.PriceChangedEvent: on_price_changed,
                catalog_events.AssortmentChangedEvent: on_assortment_changed,
            },
        )
    ]
