"""Bulk import over a client stream: good rows land, bad rows are reported, a re-import is a
no-op, a retried chunk gets the first answer."""

from __future__ import annotations

from typing import Any

import grpc
from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import events_pb2
from omni.common.v1 import money_pb2
from prometheus_client import REGISTRY

from tests.integration.catalog.helpers import (
    barcode_for,
    cny,
    expect_error,
    make_brand,
    make_category,
    make_sku,
    rid,
    upc_for,
)


def row(unique: str, n: int, **overrides) -> cat.ImportRow:
    values: dict[str, Any] = {
        "line_number": n,
        "style_code": f"IS{unique}",
        "style_name": "Imported style",
        "brand_code": f"IB{unique}",
        "category_code": f"IC{unique}",
        "sku_code": f"IS{unique}-{n}",
        "name": f"Imported {n}",
        "barcode": barcode_for(unique, n),
        "color": "black",
        "size": str(n),
        "list_price": cny(1000 + n),
    }
    values.update(overrides)
    return cat.ImportRow(**values)


async def test_import_lands_good_rows_and_reports_bad_ones(catalog, unique):
    stub = catalog.stub
    await make_brand(stub, f"IB{unique}")
    await make_category(stub, f"IC{unique}")
    chunk_1 = cat.ImportSkusRequest(
        request_id=rid(),
        rows=[
            row(unique, 1),
            row(unique, 2, barcode="4006381333932"),  # bad check digit
            row(unique, 3),
            row(unique, 4, sku_code=f"IS{unique}-1"),  # the same SKU twice in a chunk
            row(unique, 5, brand_code=f"NOPE{unique}"),
        ],
    )
    chunk_2 = cat.ImportSkusRequest(
        request_id=rid(),
        rows=[
            row(unique, 6, barcode=barcode_for(unique, 1)),  # taken by row 1 (other chunk)
            row(unique, 7, list_price={"currency_code": "CNY", "amount_minor": -1}),
            row(unique, 8, name=""),
            row(unique, 9),
        ],
    )

    async def stream(*chunks: cat.ImportSkusRequest):
        for chunk in chunks:
            yield chunk

    report = await stub.ImportSkus(stream(chunk_1, chunk_2), timeout=20)
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    reasons = {r.line_number: list(r.reasons) for r in report.rejected}
    assert sorted(reasons) == [2, 4, 5, 6, 7, 8]
    assert reasons[2][0].startswith("barcode:")
    assert reasons[4][0].startswith("sku_code:")
    assert reasons[5][0].startswith("brand_code:")
    assert "already used" in reasons[6][0]
    assert reasons[7][0].startswith("list_price.amount_minor:")
    assert reasons[8][0].startswith("name:")

    for n in (1, 3, 9):
        got = (await stub.GetSku(cat.GetSkuRequest(sku_code=f"IS{unique}-{n}"), timeout=5)).sku
        assert (got.list_price, got.brand_code, got.category_code) == (
            cny(1000 + n),
            f"IB{unique}",
            f"IC{unique}",
        )
    for n in (2, 5, 6, 7, 8):
        await expect_error(
            stub.GetSku(cat.GetSkuRequest(sku_code=f"IS{unique}-{n}"), timeout=5),
            grpc.StatusCode.NOT_FOUND,
        )

    # a retried chunk (same request_id) returns the first answer without doing anything
    retry = await stub.ImportSkus(stream(chunk_1), timeout=20)
    assert (retry.created, len(retry.rejected)) == (2, 3)

    # the same rows again under new request ids: nothing changes, nothing is emitted
    chunk_1.request_id, chunk_2.request_id = rid(), rid()
    again = await stub.ImportSkus(stream(chunk_1, chunk_2), timeout=20)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert len(await catalog.events(events_pb2.SkuCreatedEvent, f"IS{unique}-1")) == 1

    # a changed row updates the SKU and says so
    changed = await stub.ImportSkus(
        stream(cat.ImportSkusRequest(request_id=rid(), rows=[row(unique, 1, list_price=cny(555))])),
        timeout=20,
    )
    assert (changed.created, changed.updated) == (0, 1)
    [event] = await catalog.events(events_pb2.PriceChangedEvent, f"IS{unique}-1")
    assert event.list_price_of.list_price == cny(555)


def imported(outcome: str) -> float:
    return REGISTRY.get_sample_value("omni_catalog_import_rows_total", {"outcome": outcome}) or 0


async def test_import_checks_gtins_style_names_and_currencies_and_counts_once(catalog, unique):
    stub = catalog.stub
    await make_brand(stub, f"IB{unique}")
    await make_category(stub, f"IC{unique}")
    upc = upc_for(unique, 1)
    # a SKU without a list price whose regional price set its currency to USD
    await make_sku(stub, f"IS{unique}-9", f"IU{unique}")
    await stub.SetRegionalPrice(
        cat.SetRegionalPriceRequest(
            request_id=rid(),
            regional_price=c.RegionalPrice(
                sku_code=f"IS{unique}-9",
                region_code="US-CA",
                price=money_pb2.Money(currency_code="USD", amount_minor=100),
            ),
        ),
        timeout=5,
    )
    before = {outcome: imported(outcome) for outcome in ("created", "rejected")}
    chunk = cat.ImportSkusRequest(
        request_id=rid(),
        rows=[
            row(unique, 1, barcode=upc),
            row(unique, 2, barcode="0" + upc),  # the same GTIN as row 1, as an EAN-13
            row(unique, 3, style_code=f"IT{unique}", style_name="x" * 201),
            # a CNY list price for the USD SKU
            row(unique, 9, style_code=f"IU{unique}", brand_code="", category_code=""),
        ],
    )

    async def stream(*chunks: cat.ImportSkusRequest):
        for part in chunks:
            yield part

    report = await stub.ImportSkus(stream(chunk), timeout=20)
    reasons = {r.line_number: list(r.reasons) for r in report.rejected}
    assert report.created == 1
    assert sorted(reasons) == [2, 3, 9]
    assert reasons[2][0].startswith("barcode:")
    assert reasons[3][0].startswith("style_name:")
    assert reasons[9][0].startswith("list_price.currency_code:")
    # the other form of the GTIN is refused in a later chunk too, against the stored SKU
    later = await stub.ImportSkus(
        stream(cat.ImportSkusRequest(request_id=rid(), rows=[row(unique, 4, barcode="0" + upc)])),
        timeout=20,
    )
    assert [next(iter(r.reasons)) for r in later.rejected] == [
        f"barcode: 0{upc} is already used by SKU IS{unique}-1"
    ]
    # metrics count each committed chunk once: a retried chunk adds nothing
    await stub.ImportSkus(stream(chunk), timeout=20)
    assert imported("created") - before["created"] == 1
    assert imported("rejected") - before["rejected"] == 4
