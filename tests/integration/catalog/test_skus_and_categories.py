"""Styles, SKUs (codes, barcodes, lifecycle), the category tree and search, over gRPC."""

from __future__ import annotations

import grpc
import pytest
from omni.catalog.v1 import catalog_pb2 as c
from omni.catalog.v1 import catalog_service_pb2 as cat
from omni.catalog.v1 import events_pb2

from tests.integration.catalog.helpers import (
    barcode_for,
    cny,
    expect_error,
    expect_invalid,
    make_brand,
    make_category,
    make_channel,
    make_sku,
    make_style,
    rid,
    upc_for,
)


async def test_sku_under_a_style_with_brand_category_price_and_attributes(catalog, unique):
    stub = catalog.stub
    await make_brand(stub, f"B{unique}")
    await make_category(stub, f"CAT{unique}")
    await make_style(stub, f"ST{unique}", f"B{unique}", f"CAT{unique}")
    request = cat.CreateSkuRequest(
        request_id=rid(),
        sku_code=f"SKU{unique}-RED-M",
        style_code=f"ST{unique}",
        name="Tee red M",
        barcode=barcode_for(unique, 1),
        color="red",
        size="M",
        list_price=cny(19900),
        attributes={"material": "cotton"},
    )
    created = (await stub.CreateSku(request, timeout=10)).sku
    again = (await stub.CreateSku(request, timeout=10)).sku  # a retry: the first answer
    assert again == created
    got = (await stub.GetSku(cat.GetSkuRequest(sku_code=f"SKU{unique}-RED-M"), timeout=5)).sku
    assert got.brand_code == f"B{unique}"
    assert got.category_code == f"CAT{unique}"
    assert got.lifecycle == c.SKU_LIFECYCLE_DRAFT
    assert got.list_price == cny(19900)
    assert dict(got.attributes) == {"material": "cotton"}
    [event] = await catalog.events(events_pb2.SkuCreatedEvent, f"SKU{unique}-RED-M")
    assert event.sku.list_price == cny(19900)


async def test_duplicate_code_or_barcode_is_already_exists(catalog, unique):
    stub = catalog.stub
    await make_sku(stub, f"D{unique}-1", f"D{unique}", barcode=barcode_for(unique, 2))
    await expect_error(make_sku(stub, f"D{unique}-1", f"D{unique}"), grpc.StatusCode.ALREADY_EXISTS)
    await expect_error(
        make_sku(stub, f"D{unique}-2", f"D{unique}", barcode=barcode_for(unique, 2)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    await expect_error(
        stub.GetSku(cat.GetSkuRequest(sku_code=f"D{unique}-2"), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        make_style(stub, f"D{unique}"), grpc.StatusCode.ALREADY_EXISTS
    )  # the SKU created its style


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"list_price": {"currency_code": "cny", "amount_minor": 1}}, "list_price.currency_code"),
        ({"list_price": {"currency_code": "CNY", "amount_minor": -1}}, "list_price.amount_minor"),
        ({"barcode": "036000291453"}, "barcode"),
        ({"lifecycle": c.SKU_LIFECYCLE_DISCONTINUED}, "lifecycle"),
        ({"attributes": {"x" * 41: "v"}}, f"attributes[{'x' * 41}]"),
    ],
)
async def test_malformed_sku_is_invalid_argument_and_nothing_is_written(
    catalog, unique, overrides, field
):
    request = cat.CreateSkuRequest(
        request_id=rid(), sku_code=f"M{unique}", style_code=f"M{unique}", name="A name"
    )
    for key, value in overrides.items():
        if isinstance(value, dict) and key == "list_price":
            request.list_price.currency_code = value["currency_code"]
            request.list_price.amount_minor = value["amount_minor"]
        elif key == "attributes":
            request.attributes.update(value)
        else:
            setattr(request, key, value)
    await expect_invalid(catalog.stub.CreateSku(request, timeout=10), field)
    await expect_error(
        catalog.stub.GetSku(cat.GetSkuRequest(sku_code=f"M{unique}"), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await catalog.events(events_pb2.SkuCreatedEvent, f"M{unique}") == []


async def test_style_needs_an_existing_brand_and_valid_codes(catalog, unique):
    stub = catalog.stub
    await expect_error(
        make_style(stub, f"S{unique}", brand=f"NOPE{unique}"), grpc.StatusCode.NOT_FOUND
    )
    await expect_invalid(make_style(stub, f"S{unique}", brand="bad brand"), "style.brand_code")


async def test_lifecycle_draft_active_discontinued_with_events(catalog, unique):
    stub = catalog.stub
    code = f"L{unique}"
    await make_sku(stub, code, f"L{unique}")
    active = await stub.ActivateSku(
        cat.ActivateSkuRequest(request_id=rid(), sku_code=code), timeout=5
    )
    assert active.sku.lifecycle == c.SKU_LIFECYCLE_ACTIVE
    gone = await stub.DiscontinueSku(
        cat.DiscontinueSkuRequest(request_id=rid(), sku_code=code), timeout=5
    )
    assert gone.sku.lifecycle == c.SKU_LIFECYCLE_DISCONTINUED
    await expect_error(
        stub.ActivateSku(cat.ActivateSkuRequest(request_id=rid(), sku_code=code), timeout=5),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_error(
        stub.ActivateSku(
            cat.ActivateSkuRequest(request_id=rid(), sku_code=f"NO{unique}"), timeout=5
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    [changed] = await catalog.events(events_pb2.SkuChangedEvent, code)
    assert changed.sku.lifecycle == c.SKU_LIFECYCLE_ACTIVE
    [discontinued] = await catalog.events(events_pb2.SkuDiscontinuedEvent, code)
    assert discontinued.sku.lifecycle == c.SKU_LIFECYCLE_DISCONTINUED


async def test_update_sku_changes_data_and_emits_once(catalog, unique):
    stub = catalog.stub
    code = f"U{unique}"
    await make_sku(stub, code, code)
    request = cat.UpdateSkuRequest(
        request_id=rid(),
        sku_code=code,
        name="New name",
        color="blue",
        size="L",
        attributes={"fit": "slim"},
    )
    updated = (await stub.UpdateSku(request, timeout=5)).sku
    assert (updated.name, updated.color, updated.size) == ("New name", "blue", "L")
    request.request_id = rid()
    await stub.UpdateSku(request, timeout=5)  # same data again: nothing changes
    assert len(await catalog.events(events_pb2.SkuChangedEvent, code)) == 1
    await expect_invalid(
        stub.UpdateSku(cat.UpdateSkuRequest(request_id=rid(), sku_code=code, name=" "), timeout=5),
        "name",
    )


async def test_category_cycle_refused_and_move_keeps_children(catalog, unique):
    stub = catalog.stub
    a, b, cc, d = (f"{x}{unique}" for x in ("CA", "CB", "CC", "CD"))
    await make_category(stub, a)
    await make_category(stub, b, a)
    await make_category(stub, cc, b)
    await make_category(stub, d)
    await make_style(stub, f"CS{unique}", category=cc)
    await make_sku(stub, f"CS{unique}-1", f"CS{unique}")

    for new_parent in (cc, b, a):  # under a descendant, or itself
        await expect_error(
            stub.MoveCategory(
                cat.MoveCategoryRequest(
                    request_id=rid(), category_code=a, new_parent_code=new_parent
                ),
                timeout=5,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
    moved = await stub.MoveCategory(
        cat.MoveCategoryRequest(request_id=rid(), category_code=b, new_parent_code=d), timeout=5
    )
    assert moved.category.parent_code == d
    # C moved along with B: the SKU in C is now found under D and no longer under A.
    under_d = await stub.SearchSkus(cat.SearchSkusRequest(category_code=d), timeout=5)
    assert [s.sku_code for s in under_d.skus] == [f"CS{unique}-1"]
    under_a = await stub.SearchSkus(cat.SearchSkusRequest(category_code=a), timeout=5)
    assert list(under_a.skus) == []
    await expect_error(
        make_category(stub, f"CE{unique}", f"NOPE{unique}"), grpc.StatusCode.NOT_FOUND
    )


async def test_search_filters_and_pagination(catalog, unique):
    stub = catalog.stub
    brand = f"SB{unique}"
    await make_brand(stub, brand)
    await make_style(stub, f"SS{unique}", brand=brand)
    for i in range(5):
        await make_sku(stub, f"SS{unique}-{i}", f"SS{unique}", color="red" if i % 2 else "blue")
    await stub.ActivateSku(
        cat.ActivateSkuRequest(request_id=rid(), sku_code=f"SS{unique}-3"), timeout=5
    )
    await make_channel(stub, f"SCH{unique}", c.CHANNEL_KIND_ONLINE)
    await stub.SetAssortment(
        cat.SetAssortmentRequest(
            request_id=rid(),
            channel_id=f"SCH{unique}",
            entries=[c.AssortmentEntry(sku_code=f"SS{unique}-4", kind=c.ASSORTMENT_KIND_STANDARD)],
        ),
        timeout=5,
    )

    pages, token = [], ""
    while True:
        page = await stub.SearchSkus(
            cat.SearchSkusRequest(brand_code=brand, page_size=2, page_token=token), timeout=5
        )
        pages.append([s.sku_code for s in page.skus])
        token = page.next_page_token
        if not token:
            break
    assert pages == [
        [f"SS{unique}-0", f"SS{unique}-1"],
        [f"SS{unique}-2", f"SS{unique}-3"],
        [f"SS{unique}-4"],
    ]
    by_text = await stub.SearchSkus(cat.SearchSkusRequest(text=f"ss{unique.lower()}-2"), timeout=5)
    assert [s.sku_code for s in by_text.skus] == [f"SS{unique}-2"]
    active = await stub.SearchSkus(
        cat.SearchSkusRequest(brand_code=brand, lifecycle=c.SKU_LIFECYCLE_ACTIVE), timeout=5
    )
    assert [s.sku_code for s in active.skus] == [f"SS{unique}-3"]
    listed = await stub.SearchSkus(cat.SearchSkusRequest(channel_id=f"SCH{unique}"), timeout=5)
    assert [s.sku_code for s in listed.skus] == [f"SS{unique}-4"]
    await expect_invalid(
        stub.SearchSkus(cat.SearchSkusRequest(page_size=501), timeout=5), "page_size"
    )
    await expect_invalid(
        stub.SearchSkus(cat.SearchSkusRequest(page_token="%%%"), timeout=5), "page_token"
    )


async def test_brand_and_category_bad_input_names_the_field(catalog, unique):
    stub = catalog.stub
    await expect_invalid(
        stub.CreateBrand(
            cat.CreateBrandRequest(
                request_id=rid(), brand=c.Brand(brand_code="bad code", name="Brand")
            ),
            timeout=5,
        ),
        "brand.brand_code",
    )
    await expect_invalid(
        stub.CreateCategory(
            cat.CreateCategoryRequest(
                request_id=rid(), category=c.Category(category_code=f"BC{unique}", name=" ")
            ),
            timeout=5,
        ),
        "category.name",
    )
    await expect_error(
        stub.MoveCategory(
            cat.MoveCategoryRequest(request_id=rid(), category_code=f"BC{unique}"), timeout=5
        ),
        grpc.StatusCode.NOT_FOUND,  # the refused create wrote nothing
    )
    await expect_error(
        stub.UpdateBrandPolicy(
            cat.UpdateBrandPolicyRequest(request_id=rid(), brand_code=f"NOPE{unique}"), timeout=5
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await make_brand(stub, f"BR{unique}")
    await expect_error(make_brand(stub, f"BR{unique}"), grpc.StatusCode.ALREADY_EXISTS)


@pytest.mark.parametrize("first_form", ["upc", "ean"])
async def test_one_gtin_is_one_sku_whichever_form_comes_first(catalog, unique, first_form):
    stub = catalog.stub
    upc = upc_for(unique, 7 if first_form == "upc" else 8)
    ean = "0" + upc  # the same GTIN written as an EAN-13
    first, second = (upc, ean) if first_form == "upc" else (ean, upc)
    created = await make_sku(stub, f"G{unique}-1", f"G{unique}", barcode=first)
    assert created.barcode == first  # kept as the caller sent it
    error = await expect_error(
        make_sku(stub, f"G{unique}-2", f"G{unique}", barcode=second),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert f"G{unique}-1" in (error.details() or "")
    await expect_error(
        stub.GetSku(cat.GetSkuRequest(sku_code=f"G{unique}-2"), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
    # search finds the SKU by either form
    for text in (upc, ean):
        found = await stub.SearchSkus(cat.SearchSkusRequest(text=text), timeout=5)
        assert [s.sku_code for s in found.skus] == [f"G{unique}-1"]
