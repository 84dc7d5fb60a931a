"""Domain objects ↔ protobuf messages for the catalog."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from omni.catalog.v1 import catalog_pb2, catalog_service_pb2
from omni.common.v1 import money_pb2

from libs.proto_input import field_time, timestamp
from services.catalog.domain.assortments import AssortmentKind, ChannelKind
from services.catalog.domain.pricing import Money, PriceSource
from services.catalog.domain.skus import Lifecycle, NewSku, Sku

LIFECYCLE_TO_PROTO = {
    Lifecycle.DRAFT: catalog_pb2.SKU_LIFECYCLE_DRAFT,
    Lifecycle.ACTIVE: catalog_pb2.SKU_LIFECYCLE_ACTIVE,
    Lifecycle.DISCONTINUED: catalog_pb2.SKU_LIFECYCLE_DISCONTINUED,
}
LIFECYCLE_FROM_PROTO = {v: k for k, v in LIFECYCLE_TO_PROTO.items()}
CHANNEL_KIND_TO_PROTO = {
    ChannelKind.ONLINE: catalog_pb2.CHANNEL_KIND_ONLINE,
    ChannelKind.OFFLINE: catalog_pb2.CHANNEL_KIND_OFFLINE,
}
CHANNEL_KIND_FROM_PROTO = {v: k for k, v in CHANNEL_KIND_TO_PROTO.items()}
ASSORTMENT_KIND_TO_PROTO = {
    AssortmentKind.STANDARD: catalog_pb2.ASSORTMENT_KIND_STANDARD,
    AssortmentKind.ONLINE_ONLY: catalog_pb2.ASSORTMENT_KIND_ONLINE_ONLY,
    AssortmentKind.OFFLINE_ONLY: catalog_pb2.ASSORTMENT_KIND_OFFLINE_ONLY,
    AssortmentKind.CLEARANCE_ONLINE_ONLY: catalog_pb2.ASSORTMENT_KIND_CLEARANCE_ONLINE_ONLY,
}
ASSORTMENT_KIND_FROM_PROTO = {v: k for k, v in ASSORTMENT_KIND_TO_PROTO.items()}
PRICE_SOURCE_TO_PROTO = {
    PriceSource.LIST: catalog_pb2.PRICE_SOURCE_LIST,
    PriceSource.REGIONAL: catalog_pb2.PRICE_SOURCE_REGIONAL,
    PriceSource.CHANNEL_FIXED: catalog_pb2.PRICE_SOURCE_CHANNEL_FIXED,
    PriceSource.CHANNEL_PERCENTAGE: catalog_pb2.PRICE_SOURCE_CHANNEL_PERCENTAGE,
    PriceSource.PROMOTION: catalog_pb2.PRICE_SOURCE_PROMOTION,
}


def optional_time(message: Message, field: str, name: str) -> datetime | None:
    """The timestamp field of ``message`` when set, else None; a value outside the years
    1-9999 is INVALID_ARGUMENT naming ``name`` (the field's path in the request)."""
    return field_time(message, field, name)


def money_to_proto(money: Money) -> money_pb2.Money:
    return money_pb2.Money(currency_code=money.currency, amount_minor=money.amount_minor)


def money_from_proto(message: object, field: str) -> Money | None:
    """The Money field of ``message`` when set, else None (an unset price is not zero)."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    m: money_pb2.Money = getattr(message, field)
    return Money(m.currency_code.strip(), m.amount_minor)


def sku_to_proto(sku: Sku) -> catalog_pb2.Sku:
    message = catalog_pb2.Sku(
        sku_code=sku.sku_code,
        style_code=sku.style_code,
        name=sku.name,
        barcode=sku.barcode,
        color=sku.color,
        size=sku.size,
        create_time=timestamp(sku.created_at),
        lifecycle=LIFECYCLE_TO_PROTO[sku.lifecycle],
        brand_code=sku.brand_code,
        category_code=sku.category_code,
        attributes=sku.attributes,
    )
    if sku.list_price is not None:
        message.list_price.CopyFrom(money_to_proto(sku.list_price))
    if sku.updated_at is not None:
        message.update_time.CopyFrom(timestamp(sku.updated_at))
    return message


def new_sku_from_request(request: catalog_service_pb2.CreateSkuRequest) -> NewSku:
    return NewSku(
        sku_code=request.sku_code.strip(),
        style_code=request.style_code.strip(),
        name=request.name.strip(),
        barcode=request.barcode.strip(),
        color=request.color.strip(),
        size=request.size.strip(),
        list_price=money_from_proto(request, "list_price"),
        attributes=dict(request.attributes),
        # An unknown enum number is kept as a lifecycle NewSku.validate refuses.
        lifecycle=(
            Lifecycle.DRAFT
            if request.lifecycle == catalog_pb2.SKU_LIFECYCLE_UNSPECIFIED
            else LIFECYCLE_FROM_PROTO.get(request.lifecycle, Lifecycle.DISCONTINUED)
        ),
    )
