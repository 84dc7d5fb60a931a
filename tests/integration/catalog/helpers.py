"""Small builders shared by the catalog integration tests."""

from __future__ import annotations

import uuid
from datetime import datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.common.v1 import money_pb2

from libs.grpc_errors import field_violations


def rid() -> str:
    return uuid.uuid4().hex


def cny(amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount)


def ts(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


def ean13(body12: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body12)))
    return body12 + str((10 - total % 10) % 10)


def barcode_for(unique: str, n: int) -> str:
    """A valid EAN-13 unique to the test token and n."""
    digits = str(int(unique, 16) % 10**8).zfill(8)
    return ean13(f"{digits}{n:04d}")


def upc_for(unique: str, n: int) -> str:
    """A valid UPC-A (12 digits) unique to the test token and n; "0" + it is the same GTIN
    as an EAN-13."""
    digits = str(int(unique, 16) % 10**8).zfill(8)
    return ean13(f"{digits}{n:03d}")


async def expect_error(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def expect_invalid(call, field: str) -> None:
    error = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
    fields = [f for f, _ in field_violations(error)]
    assert field in fields, fields


async def make_brand(
    stub: cat_grpc.CatalogServiceAsyncStub,
    code: str,
    *,
    same_price: bool = False,
    online_only: bool = False,
) -> None:
    await stub.CreateBrand(
        cat.CreateBrandRequest(
            request_id=rid(),
            brand=c.Brand(
                brand_code=code,
                name=f"Brand {code}",
                same_price_online_offline=same_price,
                online_only=online_only,
            ),
        ),
        timeout=10,
    )


async def make_category(
    stub: cat_grpc.CatalogServiceAsyncStub, code: str, parent: str = ""
) -> None:
    await stub.CreateCategory(
        cat.CreateCategoryRequest(
            request_id=rid(),
            category=c.Category(category_code=code, name=f"Category {code}", parent_code=parent),
        ),
        timeout=10,
    )


async def make_style(
    stub: cat_grpc.CatalogServiceAsyncStub, code: str, brand: str = "", category: str = ""
) -> None:
    await stub.CreateStyle(
        cat.CreateStyleRequest(
            request_id=rid(),
            style=c.Style(
                style_code=code, name=f"Style {code}", brand_code=brand, category_code=category
            ),
        ),
        timeout=10,
    )


async def make_sku(
    stub: cat_grpc.CatalogServiceAsyncStub,
    code: str,
    style: str,
    *,
    list_price: int | None = None,
    **extra,
) -> c.Sku:
    request = cat.CreateSkuRequest(
        request_id=rid(), sku_code=code, style_code=style, name=f"SKU {code}", **extra
    )
    if list_price is not None:
        request.list_price.CopyFrom(cny(list_price))
    return (await stub.CreateSku(request, timeout=10)).sku


async def make_channel(
    stub: cat_grpc.CatalogServiceAsyncStub, channel_id: str, kind: c.ChannelKind.ValueType
) -> None:
    await stub.RegisterChannel(
        cat.RegisterChannelRequest(
            request_id=rid(), channel=c.Channel(channel_id=channel_id, kind=kind)
        ),
        timeout=10,
    )
