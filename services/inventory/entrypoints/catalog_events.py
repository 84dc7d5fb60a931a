"""Catalog's events, turned into inventory use cases."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message
from omni.catalog.v1 import events_pb2 as catalog_events
from omni.common.v1 import envelope_pb2

from libs.consumer import Handler
from libs.unit_of_work import UnitOfWork
from services.inventory.service_layer import tracked_skus


async def on_sku_created(
    uow: UnitOfWork, event: catalog_events.SkuCreatedEvent, envelope: envelope_pb2.EventEnvelope
) -> None:
    await tracked_skus.track_sku(uow, event.sku.sku_code, event.sku.style_code, event.sku.barcode)


SUBSCRIPTIONS: Mapping[type[Message], Handler] = {catalog_events.SkuCreatedEvent: on_sku_created}
