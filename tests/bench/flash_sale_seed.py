"""The flash sale's world, created through the services' public gRPC APIs only: a style with
hot SKUs (the sale) and ample SKUs (for the direct capture measurement) in catalog, a web-mall
channel in catalog and gateway with a signing key and a push endpoint, and in inventory an
e-commerce warehouse and two stores serving the channel, holding the hot stock between them.
Inventory learns SKUs from catalog's events, so receipts wait until it tracks each SKU."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from omni.catalog.v1 import catalog_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2 as cat_svc
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.gateway.v1 import gateway_pb2 as gw
from omni.gateway.v1 import gateway_service_pb2 as gw_svc
from omni.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from omni.inventory.v1 import inventory_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2 as inv_svc
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.testing.services import eventually

CHANNEL = "FLASH-MALL"
STYLE = "FLASH"
HOT_SKUS = [f"FLASH-HOT-{i:02d}" for i in range(10)]
AMPLE_SKUS = [f"FLASH-AMPLE-{i:02d}" for i in range(20)]
HOT_STOCK = 300
AMPLE_STOCK = 1_000_000
PRICE_FEN = 9900
STORE_SAFETY_STOCK = 2
TIMEOUT_S = 30
_ALL_CAPABILITIES = [
    inv.CAPABILITY_EXPRESS_SHIPPING,
    inv.CAPABILITY_SAME_CITY_DELIVERY,
    inv.CAPABILITY_PICKUP,
    inv.CAPABILITY_TRANSFER,
]


@dataclass(frozen=True)
class Site:
    location_id: str
    type: inv.LocationType.ValueType
    latitude: float
    longitude: float
    capabilities: list[inv.Capability.ValueType]
    safety_stock: int
    hot_units: int
    ample_units: int


# The hot stock of each SKU, 300 units in all: most in the e-commerce warehouse, some in two
# Shanghai stores (which keep a small safety buffer, as stores do).
SITES = [
    Site(
        "FLASH-ECWH",
        inv.LOCATION_TYPE_ECOMMERCE_WAREHOUSE,
        31.3756,
        121.2655,
        [inv.CAPABILITY_EXPRESS_SHIPPING, inv.CAPABILITY_TRANSFER],
        0,
        240,
        AMPLE_STOCK,
    ),
    Site("FLASH-STORE-JA", inv.LOCATION_TYPE_STORE, 31.2304, 121.4589, _ALL_CAPABILITIES, 2, 30, 0),
    Site("FLASH-STORE-XH", inv.LOCATION_TYPE_STORE, 31.1955, 121.4365, _ALL_CAPABILITIES, 2, 30, 0),
]
assert sum(site.hot_units for site in SITES) == HOT_STOCK


@dataclass(frozen=True)
class ChannelKey:
    key_id: str
    secret: str


async def seed(
    catalog: grpc.aio.Channel,
    inventory: grpc.aio.Channel,
    gateway: grpc.aio.Channel,
    push_endpoint: str,
) -> ChannelKey:
    await _catalog(cat_grpc.CatalogServiceStub(catalog))
    key = await _gateway(gw_grpc.GatewayServiceStub(gateway), push_endpoint)
    await _inventory(inv_grpc.InventoryServiceStub(inventory))
    return key


async def _catalog(stub: cat_grpc.CatalogServiceAsyncStub) -> None:
    await stub.CreateStyle(
        cat_svc.CreateStyleRequest(
            request_id=f"seed-style-{STYLE}", style=cat.Style(style_code=STYLE, name="Flash sale")
        ),
        timeout=TIMEOUT_S,
    )
    for sku in HOT_SKUS + AMPLE_SKUS:
        request = cat_svc.CreateSkuRequest(
            request_id=f"seed-sku-{sku}", sku_code=sku, style_code=STYLE, name=sku
        )
        request.list_price.currency_code = "CNY"
        request.list_price.amount_minor = PRICE_FEN
        await stub.CreateSku(request, timeout=TIMEOUT_S)
    await stub.RegisterChannel(
        cat_svc.RegisterChannelRequest(
            request_id=f"seed-channel-{CHANNEL}",
            channel=cat.Channel(channel_id=CHANNEL, kind=cat.CHANNEL_KIND_ONLINE),
        ),
        timeout=TIMEOUT_S,
    )


async def _gateway(stub: gw_grpc.GatewayServiceAsyncStub, push_endpoint: str) -> ChannelKey:
    await stub.CreateChannel(
        gw_svc.CreateChannelRequest(
            request_id=f"seed-gw-channel-{CHANNEL}",
            channel=gw.Channel(
                channel_id=CHANNEL,
                kind=gw.CHANNEL_KIND_OWN_ONLINE,
                connector=gw.CONNECTOR_TYPE_WEB_MALL,
                # The sale measures the platform, not the channel's rate limit.
                rate_limit_per_second=100_000,
                rate_limit_burst=100_000,
                push_endpoint=push_endpoint,
            ),
        ),
        timeout=TIMEOUT_S,
    )
    issued = await stub.IssueCredential(
        gw_svc.IssueCredentialRequest(
            request_id=f"seed-key-{CHANNEL}",
            owner_kind=gw.OWNER_KIND_CHANNEL,
            owner_id=CHANNEL,
            channel_id=CHANNEL,
            scopes=["orders:write", "orders:read"],
        ),
        timeout=TIMEOUT_S,
    )
    return ChannelKey(issued.credential.key_id, issued.secret)


async def _inventory(stub: inv_grpc.InventoryServiceAsyncStub) -> None:
    for site in SITES:
        await stub.CreateLocation(
            inv_svc.CreateLocationRequest(
                request_id=f"seed-location-{site.location_id}",
                location=inv.Location(
                    location_id=site.location_id,
                    name=site.location_id,
                    type=site.type,
                    province="Shanghai",
                    city="Shanghai",
                    latitude=site.latitude,
                    longitude=site.longitude,
                    time_zone="Asia/Shanghai",
                    capabilities=site.capabilities,
                    channels=[CHANNEL],
                    default_safety_stock=site.safety_stock,
                ),
            ),
            timeout=TIMEOUT_S,
        )

    async def tracked() -> None:
        for sku in HOT_SKUS + AMPLE_SKUS:
            await stub.GetTrackedSku(inv_svc.GetTrackedSkuRequest(sku_code=sku), timeout=10)

    await eventually(tracked, timeout=120, interval=0.2)
    for site in SITES:
        rows = [(sku, site.hot_units) for sku in HOT_SKUS]
        rows += [(sku, site.ample_units) for sku in AMPLE_SKUS if site.ample_units]
        answer = await stub.ImportStock(
            inv_svc.ImportStockRequest(
                request_id=f"seed-stock-{site.location_id}",
                rows=inv_svc.ImportStockRows(
                    rows=[
                        inv_svc.ImportStockRow(
                            location_id=site.location_id,
                            sku_code=sku,
                            kind=inv.MOVEMENT_KIND_RECEIPT,
                            quantity=units,
                            idempotency_key=f"seed-{site.location_id}-{sku}",
                        )
                        for sku, units in rows
                    ]
                ),
            ),
            timeout=60,
        )
        if answer.errors:
            raise RuntimeError(f"stock import refused rows: {list(answer.errors)[:3]}")
