"""Demo data that `make run` loads once: a few styles and SKUs, through the public RPCs.

Every request carries a fixed request_id, so loading again changes nothing.
"""

from __future__ import annotations

import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc

DEMO_SKUS = [
    ("DEMO-TEE-RED-M", "DEMO-TEE", "Cotton tee, red, M", "4006381333931", "red", "M"),
    ("DEMO-TEE-RED-L", "DEMO-TEE", "Cotton tee, red, L", "", "red", "L"),
    ("DEMO-TEE-BLU-M", "DEMO-TEE", "Cotton tee, blue, M", "", "blue", "M"),
    ("DEMO-JKT-BLK-M", "DEMO-JKT", "Rain jacket, black, M", "036000291452", "black", "M"),
]


async def load(addresses: dict[str, str]) -> int:
    """Load the demo data; returns how many SKUs are in place."""
    async with grpc.aio.insecure_channel(addresses["catalog"]) as channel:
        catalog = cat_grpc.CatalogServiceStub(channel)
        for code, style, name, barcode, color, size in DEMO_SKUS:
            await catalog.CreateSku(
                cat.CreateSkuRequest(
                    request_id=f"demo-sku-{code}",
                    sku_code=code,
                    style_code=style,
                    name=name,
                    barcode=barcode,
                    color=color,
                    size=size,
                ),
                timeout=10,
            )
    return len(DEMO_SKUS)
