"""The slice: catalog creates a SKU; SkuCreatedEvent goes outbox → broker → inventory's
consumer; inventory answers about it."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import catalog_service_pb2_grpc as cat_grpc
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.grpc_errors import field_violations
from libs.service_app import ServiceProcess
from libs.testing.services import eventually, running_service


async def test_sku_created_in_catalog_is_tracked_by_inventory(test_stack, unique):
    async with (
        running_service(test_stack.settings("catalog")) as catalog,
        running_service(test_stack.settings("inventory")) as inventory,
        grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as cat_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{inventory.port}") as inv_channel,
    ):
        catalog_stub = cat_grpc.CatalogServiceStub(cat_channel)
        inventory_stub = inv_grpc.InventoryServiceStub(inv_channel)
        created = await catalog_stub.CreateSku(
            cat.CreateSkuRequest(
                request_id=f"req-{unique}",
                sku_code=f"TEE-{unique}-RED-M",
                style_code=f"TEE-{unique}",
                name="Cotton tee, red, M",
                barcode="4006381333931",
                color="red",
                size="M",
            ),
            timeout=10,
        )
        assert created.sku.sku_code == f"TEE-{unique}-RED-M"

        async def tracked() -> inv.GetTrackedSkuResponse:
            return await inventory_stub.GetTrackedSku(
                inv.GetTrackedSkuRequest(sku_code=f"TEE-{unique}-RED-M"), timeout=5
            )

        found = await eventually(tracked)
        assert found.tracked_sku.style_code == f"TEE-{unique}"
        assert found.tracked_sku.barcode == "4006381333931"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sku_code": ""}, "sku_code"),
        ({"sku_code": "bad code!"}, "sku_code"),
        ({"style_code": ""}, "style_code"),
        ({"name": "  "}, "name"),
        ({"barcode": "4006381333932"}, "barcode"),
        ({"request_id": ""}, "request_id"),
        ({"name": "nul\x00inside"}, "name"),
        ({"request_id": "r\x00"}, "request_id"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(
    test_stack, unique, overrides, field
):
    request = cat.CreateSkuRequest(
        request_id=f"bad-{unique}",
        sku_code=f"BAD-{unique}",
        style_code=f"STYLE-{unique}",
        name="A name",
    )
    for key, value in overrides.items():
        setattr(request, key, value)
    async with (
        running_service(test_stack.settings("catalog")) as catalog,
        grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as channel,
    ):
        before = await written_rows(catalog)
        stub = cat_grpc.CatalogServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateSku(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [f for f, _ in field_violations(caught.value)]
        assert await written_rows(catalog) == before


async def written_rows(catalog: ServiceProcess) -> tuple[int, int, int]:
    """(SKUs, outbox rows, stored request ids) in catalog's database."""
    async with catalog.runtime.db.session() as session:
        row = (
            await session.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM skus), (SELECT count(*) FROM outbox), "
                    "(SELECT count(*) FROM processed_requests)"
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_request_that_is_not_valid_utf8_is_invalid_argument(test_stack, unique):
    """Raw bytes, as a foreign client could send them: the sku_code field is not UTF-8."""
    valid = cat.CreateSkuRequest(
        request_id=f"utf-{unique}", sku_code="ZZZZZZ", style_code=f"S-{unique}", name="n"
    ).SerializeToString()
    raw = valid.replace(b"ZZZZZZ", b"\xff\xfe\xfd\xfc\xfb\xfa")
    async with (
        running_service(test_stack.settings("catalog")) as catalog,
        grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as channel,
    ):
        before = await written_rows(catalog)
        call = channel.unary_unary(
            "/omni.catalog.v1.CatalogService/CreateSku",
            request_serializer=lambda data: data,
            response_deserializer=cat.CreateSkuResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(raw, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(caught.value)] == ["request"]
        assert await written_rows(catalog) == before
