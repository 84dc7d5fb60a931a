"""Demo data that `make run` loads: a small brand in Shanghai and Hangzhou, through the
public RPCs — SKUs with prices (catalog), an e-commerce warehouse and three stores holding
stock (inventory), and two channels with signing keys, a web mall and a store POS (gateway).

Every request carries a fixed request_id, so loading again changes nothing (and gives back
the same demo key, which ``services.demo_order`` uses to place an order).
"""

from __future__ import annotations

import asyncio
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

MALL = "DEMO-MALL"
POS = "DEMO-POS"
# sku code, style, name, barcode, colour, size, list price in fen
DEMO_SKUS = [
    ("DEMO-TEE-RED-M", "DEMO-TEE", "Cotton tee, red, M", "4006381333931", "red", "M", 9900),
    ("DEMO-TEE-RED-L", "DEMO-TEE", "Cotton tee, red, L", "", "red", "L", 9900),
    ("DEMO-TEE-BLU-M", "DEMO-TEE", "Cotton tee, blue, M", "", "blue", "M", 9900),
    ("DEMO-JKT-BLK-M", "DEMO-JKT", "Rain jacket, black, M", "036000291452", "black", "M", 39900),
]
_ALL = [
    inv.CAPABILITY_EXPRESS_SHIPPING,
    inv.CAPABILITY_SAME_CITY_DELIVERY,
    inv.CAPABILITY_PICKUP,
    inv.CAPABILITY_TRANSFER,
]
# location id, name, type, province, city, latitude, longitude, capabilities, stock per SKU
DEMO_LOCATIONS = [
    (
        "DEMO-ECWH-SH",
        "E-commerce warehouse, Jiading",
        inv.LOCATION_TYPE_ECOMMERCE_WAREHOUSE,
        "Shanghai",
        "Shanghai",
        31.3756,
        121.2655,
        [inv.CAPABILITY_EXPRESS_SHIPPING, inv.CAPABILITY_TRANSFER],
        200,
    ),
    (
        "DEMO-STORE-JINGAN",
        "Store, Nanjing West Road",
        inv.LOCATION_TYPE_STORE,
        "Shanghai",
        "Shanghai",
        31.2304,
        121.4589,
        _ALL,
        5,
    ),
    (
        "DEMO-STORE-XUHUI",
        "Store, Xujiahui",
        inv.LOCATION_TYPE_STORE,
        "Shanghai",
        "Shanghai",
        31.1955,
        121.4365,
        _ALL,
        5,
    ),
    (
        "DEMO-STORE-HANGZHOU",
        "Store, West Lake",
        inv.LOCATION_TYPE_STORE,
        "Zhejiang",
        "Hangzhou",
        30.2594,
        120.1653,
        _ALL,
        5,
    ),
]
MALL_SCOPES = ["orders:write", "orders:read", "catalog:read", "availability:read"]
POS_SCOPES = [*MALL_SCOPES, "returns:write", "members:read", "members:write", "fulfilments:write"]


@dataclass(frozen=True)
class DemoKey:
    channel_id: str
    key_id: str
    secret: str


async def load(addresses: dict[str, str]) -> int:
    """Load the demo data; returns how many SKUs are in place."""
    async with grpc.aio.insecure_channel(addresses["catalog"]) as channel:
        await _catalog(cat_grpc.CatalogServiceStub(channel))
    async with grpc.aio.insecure_channel(addresses["inventory"]) as channel:
        await _inventory(inv_grpc.InventoryServiceStub(channel))
    async with grpc.aio.insecure_channel(addresses["gateway"]) as channel:
        await _gateway(gw_grpc.GatewayServiceStub(channel))
    return len(DEMO_SKUS)


async def _catalog(catalog: cat_grpc.CatalogServiceAsyncStub) -> None:
    for code, style, name, barcode, color, size, price in DEMO_SKUS:
        request = cat_svc.CreateSkuRequest(
            request_id=f"demo-sku-{code}",
            sku_code=code,
            style_code=style,
            name=name,
            barcode=barcode,
            color=color,
            size=size,
        )
        request.list_price.currency_code = "CNY"
        request.list_price.amount_minor = price
        await catalog.CreateSku(request, timeout=10)
    for channel_id, kind in ((MALL, cat.CHANNEL_KIND_ONLINE), (POS, cat.CHANNEL_KIND_OFFLINE)):
        await catalog.RegisterChannel(
            cat_svc.RegisterChannelRequest(
                request_id=f"demo-channel-{channel_id}",
                channel=cat.Channel(channel_id=channel_id, kind=kind),
            ),
            timeout=10,
        )


async def _inventory(inventory: inv_grpc.InventoryServiceAsyncStub) -> None:
    for location_id, name, kind, province, city, lat, lng, capabilities, stock in DEMO_LOCATIONS:
        await inventory.CreateLocation(
            inv_svc.CreateLocationRequest(
                request_id=f"demo-location-{location_id}",
                location=inv.Location(
                    location_id=location_id,
                    name=name,
                    type=kind,
                    province=province,
                    city=city,
                    latitude=lat,
                    longitude=lng,
                    time_zone="Asia/Shanghai",
                    capabilities=capabilities,
                    channels=[MALL, POS],
                    default_safety_stock=0,
                ),
            ),
            timeout=10,
        )
        for sku_code, *_ in DEMO_SKUS:
            await _receive(inventory, location_id, sku_code, stock)


async def _receive(
    inventory: inv_grpc.InventoryServiceAsyncStub, location_id: str, sku_code: str, quantity: int
) -> None:
    request = inv_svc.RecordMovementRequest(
        request_id=f"demo-stock-{location_id}-{sku_code}",
        location_id=location_id,
        sku_code=sku_code,
        kind=inv.MOVEMENT_KIND_RECEIPT,
        quantity=quantity,
        reason="demo opening stock",
    )
    # Inventory learns of a SKU from catalog's event, a moment after it was created.
    for _ in range(100):
        try:
            await inventory.RecordMovement(request, timeout=10)
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT or "not tracked" not in (
                error.details() or ""
            ):
                raise
            await asyncio.sleep(0.2)
    raise TimeoutError(f"inventory never registered {sku_code}")


async def _gateway(gateway: gw_grpc.GatewayServiceAsyncStub) -> None:
    for channel_id, kind, connector in (
        (MALL, gw.CHANNEL_KIND_OWN_ONLINE, gw.CONNECTOR_TYPE_WEB_MALL),
        (POS, gw.CHANNEL_KIND_STORE, gw.CONNECTOR_TYPE_POS),
    ):
        await gateway.CreateChannel(
            gw_svc.CreateChannelRequest(
                request_id=f"demo-gw-channel-{channel_id}",
                channel=gw.Channel(channel_id=channel_id, kind=kind, connector=connector),
            ),
            timeout=10,
        )
    await demo_key(gateway, MALL)
    await demo_key(gateway, POS)


async def demo_key(gateway: gw_grpc.GatewayServiceAsyncStub, channel_id: str) -> DemoKey:
    """The demo channel's signing key: issued once; asking again returns the same key."""
    issued = await gateway.IssueCredential(
        gw_svc.IssueCredentialRequest(
            request_id=f"demo-key-{channel_id}",
            owner_kind=gw.OWNER_KIND_CHANNEL,
            owner_id=channel_id,
            channel_id=channel_id,
            scopes=MALL_SCOPES if channel_id == MALL else POS_SCOPES,
        ),
        timeout=10,
    )
    return DemoKey(channel_id, issued.credential.key_id, issued.secret)
