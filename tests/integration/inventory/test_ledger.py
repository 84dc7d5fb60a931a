"""The stock ledger over the wire: every kind of movement keeps on hand == sum of the
ledger; bad input is refused naming the field and writes nothing; retries change nothing."""

from __future__ import annotations

import grpc
import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv

from libs.grpc_errors import field_violations


async def move(inventory, request_id, location_id, sku, kind, quantity, **extra):
    return await inventory.stub.RecordMovement(
        inv.RecordMovementRequest(
            request_id=request_id,
            location_id=location_id,
            sku_code=sku,
            kind=kind,
            quantity=quantity,
            **extra,
        ),
        timeout=10,
    )


async def test_every_movement_kind_keeps_on_hand_equal_to_the_ledger(inventory, unique):
    sku = await inventory.track(f"LEDGER-{unique}-A")
    store = (await inventory.location(f"ST-{unique}")).location_id
    other = (
        await inventory.location(f"WH-{unique}", type=res.LOCATION_TYPE_REGIONAL_WAREHOUSE)
    ).location_id

    await move(inventory, f"{unique}-1", store, sku, res.MOVEMENT_KIND_RECEIPT, 10)
    await inventory.assert_ledger(store, sku, 10)
    await move(inventory, f"{unique}-2", store, sku, res.MOVEMENT_KIND_SALE, 3)
    await inventory.assert_ledger(store, sku, 7)
    await move(inventory, f"{unique}-3", store, sku, res.MOVEMENT_KIND_ADJUSTMENT, -2)
    await inventory.assert_ledger(store, sku, 5)
    await move(inventory, f"{unique}-4", store, sku, res.MOVEMENT_KIND_ADJUSTMENT, 4)
    await inventory.assert_ledger(store, sku, 9)
    await move(inventory, f"{unique}-5", store, sku, res.MOVEMENT_KIND_RETURN, 1)
    await inventory.assert_ledger(store, sku, 10)

    counted = await inventory.stub.RecordCount(
        inv.RecordCountRequest(
            request_id=f"{unique}-6", location_id=store, sku_code=sku, counted_quantity=8
        ),
        timeout=10,
    )
    assert counted.movement.kind == res.MOVEMENT_KIND_COUNT
    assert counted.movement.quantity == -2  # the difference the count found
    await inventory.assert_ledger(store, sku, 8)

    transfer = (
        await inventory.stub.RequestTransfer(
            inv.RequestTransferRequest(
                request_id=f"{unique}-7",
                from_location_id=store,
                to_location_id=other,
                lines=[res.SkuQuantity(sku_code=sku, quantity=3)],
            ),
            timeout=10,
        )
    ).transfer
    await inventory.stub.ShipTransfer(
        inv.ShipTransferRequest(request_id=f"{unique}-8", transfer_id=transfer.transfer_id),
        timeout=10,
    )
    await inventory.assert_ledger(store, sku, 5)  # transfer out
    await inventory.stub.ReceiveTransfer(
        inv.ReceiveTransferRequest(request_id=f"{unique}-9", transfer_id=transfer.transfer_id),
        timeout=10,
    )
    await inventory.assert_ledger(other, sku, 3)  # transfer in

    await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=f"{unique}-10",
            order_id=f"ORD-{unique}",
            channel="mall",
            lines=[res.ReservationLine(line_id="1", sku_code=sku, location_id=store, quantity=2)],
        ),
        timeout=10,
    )
    await inventory.assert_ledger(store, sku, 5)  # a hold is not a movement
    await inventory.stub.ConfirmReservation(
        inv.ConfirmReservationRequest(request_id=f"{unique}-11", order_id=f"ORD-{unique}"),
        timeout=10,
    )
    await inventory.assert_ledger(store, sku, 3)  # confirmed: a sale left the ledger

    movements = await inventory.stub.ListMovements(
        inv.ListMovementsRequest(location_id=store, sku_code=sku, page_size=4), timeout=10
    )
    assert [m.kind for m in movements.movements] == [
        res.MOVEMENT_KIND_RECEIPT,
        res.MOVEMENT_KIND_SALE,
        res.MOVEMENT_KIND_ADJUSTMENT,
        res.MOVEMENT_KIND_ADJUSTMENT,
    ]
    rest = await inventory.stub.ListMovements(
        inv.ListMovementsRequest(
            location_id=store, sku_code=sku, page_size=50, page_token=movements.next_page_token
        ),
        timeout=10,
    )
    assert [m.kind for m in rest.movements] == [
        res.MOVEMENT_KIND_RETURN,
        res.MOVEMENT_KIND_COUNT,
        res.MOVEMENT_KIND_TRANSFER_OUT,
        res.MOVEMENT_KIND_SALE,
    ]
    assert rest.next_page_token == ""
    assert await inventory.outbox_count("omni.inventory.v1.StockChangedEvent", sku) >= 9


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("unknown_sku", "sku_code"),
        ("unknown_location", "location_id"),
        ("zero_quantity", "quantity"),
        ("negative_receipt", "quantity"),
        ("zero_adjustment", "quantity"),
        ("no_kind", "kind"),
        ("transfer_kind", "kind"),
        ("no_request_id", "request_id"),
    ],
)
async def test_bad_movement_is_invalid_argument_naming_the_field_and_writes_nothing(
    inventory, unique, case, field
):
    sku = await inventory.track(f"BADMOVE-{unique}")
    store = (await inventory.location(f"ST-{unique}")).location_id
    request = inv.RecordMovementRequest(
        request_id=f"bad-{unique}",
        location_id=store,
        sku_code=sku,
        kind=res.MOVEMENT_KIND_RECEIPT,
        quantity=5,
    )
    if case == "unknown_sku":
        request.sku_code = f"NOPE-{unique}"
    elif case == "unknown_location":
        request.location_id = f"NOPE-{unique}"
    elif case == "zero_quantity":
        request.quantity = 0
    elif case == "negative_receipt":
        request.quantity = -5
    elif case == "zero_adjustment":
        request.kind, request.quantity = res.MOVEMENT_KIND_ADJUSTMENT, 0
    elif case == "no_kind":
        request.kind = res.MOVEMENT_KIND_UNSPECIFIED
    elif case == "transfer_kind":
        request.kind = res.MOVEMENT_KIND_TRANSFER_IN
    elif case == "no_request_id":
        request.request_id = ""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inventory.stub.RecordMovement(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(caught.value)]
    assert (
        await inventory.scalar("SELECT count(*) FROM stock_movements WHERE sku_code = :s", s=sku)
        == 0
    )
    assert (
        await inventory.scalar("SELECT count(*) FROM stock_levels WHERE sku_code = :s", s=sku) == 0
    )


async def test_count_below_zero_is_refused_and_sale_below_zero_writes_nothing(inventory, unique):
    sku = await inventory.track(f"BADCOUNT-{unique}")
    store = (await inventory.location(f"ST-{unique}")).location_id
    await inventory.receive(store, sku, 2, f"{unique}-r")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inventory.stub.RecordCount(
            inv.RecordCountRequest(
                request_id=f"{unique}-c", location_id=store, sku_code=sku, counted_quantity=-1
            ),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["counted_quantity"]
    with pytest.raises(grpc.aio.AioRpcError) as short:
        await move(inventory, f"{unique}-s", store, sku, res.MOVEMENT_KIND_SALE, 3)
    assert short.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await inventory.assert_ledger(store, sku, 2)
    assert (
        await inventory.scalar("SELECT count(*) FROM stock_movements WHERE sku_code = :s", s=sku)
        == 1
    )


async def test_retries_change_nothing(inventory, unique):
    sku = await inventory.track(f"RETRY-{unique}")
    store = (await inventory.location(f"ST-{unique}")).location_id
    first = await move(inventory, f"{unique}-1", store, sku, res.MOVEMENT_KIND_RECEIPT, 7)
    again = await move(inventory, f"{unique}-1", store, sku, res.MOVEMENT_KIND_RECEIPT, 7)
    assert again == first
    # Another request carrying the POS's own key for the same movement: not applied again.
    keyed = await move(
        inventory,
        f"{unique}-2",
        store,
        sku,
        res.MOVEMENT_KIND_SALE,
        2,
        idempotency_key=f"pos-{unique}",
    )
    resent = await move(
        inventory,
        f"{unique}-3",
        store,
        sku,
        res.MOVEMENT_KIND_SALE,
        2,
        idempotency_key=f"pos-{unique}",
    )
    assert resent.movement.movement_id == keyed.movement.movement_id
    await inventory.assert_ledger(store, sku, 5)
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await move(
            inventory,
            f"{unique}-4",
            store,
            sku,
            res.MOVEMENT_KIND_SALE,
            1,
            idempotency_key=f"pos-{unique}",
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(reused.value)] == ["idempotency_key"]
    with pytest.raises(grpc.aio.AioRpcError) as other_request:
        await move(inventory, f"{unique}-1", store, sku, res.MOVEMENT_KIND_RECEIPT, 8)
    assert other_request.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await inventory.assert_ledger(store, sku, 5)


async def test_bulk_import_applies_good_rows_and_reports_bad_ones(inventory, unique):
    a = await inventory.track(f"IMP-{unique}-A")
    b = await inventory.track(f"IMP-{unique}-B")
    s1 = (await inventory.location(f"S1-{unique}")).location_id
    s2 = (await inventory.location(f"S2-{unique}")).location_id
    rows = [
        inv.ImportStockRow(location_id=s1, sku_code=a, kind=res.MOVEMENT_KIND_RECEIPT, quantity=10),
        inv.ImportStockRow(location_id=s2, sku_code=a, kind=res.MOVEMENT_KIND_COUNT, quantity=4),
        inv.ImportStockRow(
            location_id=s1, sku_code=f"NOPE-{unique}", kind=res.MOVEMENT_KIND_RECEIPT, quantity=1
        ),
        inv.ImportStockRow(location_id=s2, sku_code=b, kind=res.MOVEMENT_KIND_COUNT, quantity=-3),
        inv.ImportStockRow(location_id=s1, sku_code=b, kind=res.MOVEMENT_KIND_SALE, quantity=1),
        inv.ImportStockRow(location_id=s1, sku_code=a, kind=res.MOVEMENT_KIND_SALE, quantity=3),
    ]
    request = inv.ImportStockRequest(
        request_id=f"imp-{unique}", rows=inv.ImportStockRows(rows=rows)
    )
    report = await inventory.stub.ImportStock(request, timeout=30)
    assert report.applied_rows == 3
    assert [(e.row, e.field) for e in report.errors] == [
        (3, "sku_code"),
        (4, "counted_quantity"),
        (5, "quantity"),  # would take on hand below zero
    ]
    await inventory.assert_ledger(s1, a, 7)
    await inventory.assert_ledger(s2, a, 4)
    assert await inventory.scalar("SELECT count(*) FROM stock_levels WHERE sku_code = :s", s=b) == 0
    # The whole import retried: same report, nothing applied twice.
    assert await inventory.stub.ImportStock(request, timeout=30) == report
    await inventory.assert_ledger(s1, a, 7)

    csv_file = (
        "location_id,sku_code,kind,quantity,idempotency_key,reason\n"
        f"{s1},{a},receipt,5,erp-{unique}-1,delivery\n"
        f"{s1},{a},receipt,five,erp-{unique}-2,typo\n"
        f"{s2},{b},return,2,erp-{unique}-3,\n"
        f"{s2},{b},shrug,2,erp-{unique}-4,\n"
        f"{s1},{a},receipt,5,erp-{unique}-1,delivery\n"
    ).encode()
    csv_report = await inventory.stub.ImportStock(
        inv.ImportStockRequest(request_id=f"csv-{unique}", csv_file=csv_file), timeout=30
    )
    assert csv_report.applied_rows == 2
    assert csv_report.duplicate_rows == 1
    assert [(e.row, e.field) for e in csv_report.errors] == [(2, "quantity"), (4, "kind")]
    await inventory.assert_ledger(s1, a, 12)
    await inventory.assert_ledger(s2, b, 2)
