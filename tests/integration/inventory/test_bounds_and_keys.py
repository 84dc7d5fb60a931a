"""Bounds that keep bad input from ever reaching PostgreSQL as INTERNAL: transfer quantities,
level sizes, import files, text lengths; senders' idempotency keys in their own namespace;
UpdateLocation keeps an unset `active`; business metrics count only what committed."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from prometheus_client import REGISTRY

from libs.grpc_errors import field_violations
from services.inventory.domain.stock import MAX_LEVEL

INT64_MAX = 2**63 - 1


async def expect(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def expect_field(call, field: str) -> None:
    error = await expect(call, grpc.StatusCode.INVALID_ARGUMENT)
    assert field in [f for f, _ in field_violations(error)], field_violations(error)


async def transfer(inventory, unique: str, source: str, target: str, lines) -> str:
    got = await inventory.stub.RequestTransfer(
        inv.RequestTransferRequest(
            request_id=f"{unique}-req",
            from_location_id=source,
            to_location_id=target,
            lines=[res.SkuQuantity(sku_code=s, quantity=q) for s, q in lines],
        )
    )
    return got.transfer.transfer_id


async def test_transfer_quantities_are_bounded_and_stock_never_comes_from_nothing(
    inventory, unique
):
    a = await inventory.track(f"TB-{unique}-A")
    b = await inventory.track(f"TB-{unique}-B")
    source = (await inventory.location(f"TBS-{unique}")).location_id
    target = (await inventory.location(f"TBT-{unique}")).location_id
    await inventory.receive(source, a, 10, f"{unique}-a")
    await inventory.receive(source, b, 10, f"{unique}-b")
    await expect_field(
        inventory.stub.RequestTransfer(
            inv.RequestTransferRequest(
                request_id=f"{unique}-huge",
                from_location_id=source,
                to_location_id=target,
                lines=[res.SkuQuantity(sku_code=a, quantity=INT64_MAX)],
            )
        ),
        "lines[0].quantity",
    )
    transfer_id = await transfer(inventory, unique, source, target, [(a, 4), (b, 2)])
    # shipping more than was requested is refused, naming the line; nothing moves
    await expect_field(
        inventory.stub.ShipTransfer(
            inv.ShipTransferRequest(
                request_id=f"{unique}-over",
                transfer_id=transfer_id,
                shipped=[res.SkuQuantity(sku_code=b, quantity=3)],
            )
        ),
        "shipped[0].quantity",
    )
    await inventory.assert_ledger(source, b, 10)
    await inventory.stub.ShipTransfer(
        inv.ShipTransferRequest(
            request_id=f"{unique}-ship",
            transfer_id=transfer_id,
            shipped=[res.SkuQuantity(sku_code=a, quantity=3)],  # b leaves as requested (2)
        )
    )
    # receiving more than was shipped would create stock from nothing: refused
    for quantity in (4, INT64_MAX):
        await expect_field(
            inventory.stub.ReceiveTransfer(
                inv.ReceiveTransferRequest(
                    request_id=f"{unique}-rcv-{quantity}",
                    transfer_id=transfer_id,
                    received=[
                        res.SkuQuantity(sku_code=b, quantity=2),
                        res.SkuQuantity(sku_code=a, quantity=quantity),
                    ],
                )
            ),
            "received[1].quantity",
        )
    assert (await inventory.level(target, a)).in_transit == 3
    await inventory.assert_ledger(target, a, 0)
    received = await inventory.stub.ReceiveTransfer(
        inv.ReceiveTransferRequest(
            request_id=f"{unique}-rcv",
            transfer_id=transfer_id,
            received=[res.SkuQuantity(sku_code=a, quantity=1)],
        )
    )
    # received + what did not arrive = shipped, per line
    assert [
        (line.sku_code, line.shipped_quantity, line.received_quantity, line.discrepancy)
        for line in received.transfer.lines
    ] == [(a, 3, 1, -2), (b, 2, 2, 0)]
    await inventory.assert_ledger(target, a, 1)
    await inventory.assert_ledger(target, b, 2)
    await inventory.assert_ledger(source, a, 7)


async def _seed_level(inventory, location: str, sku: str, on_hand: int, key: str) -> None:
    """Arrange a level near the bound the way a long history would have (one movement)."""
    async with inventory.db.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO stock_levels (location_id, sku_code, on_hand) VALUES (:l, :s, :q)"
            ),
            {"l": location, "s": sku, "q": on_hand},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO stock_movements (location_id, sku_code, kind, quantity, "
                "on_hand_after, idempotency_key) VALUES (:l, :s, 'receipt', :q, :q, :k)"
            ),
            {"l": location, "s": sku, "q": on_hand, "k": key},
        )


async def test_no_level_passes_the_bound_so_channel_sums_fit_int64(inventory, unique):
    a = await inventory.track(f"LB-{unique}")
    channel = f"lb-{unique.lower()}"
    full = [
        (await inventory.location(f"LB{i}-{unique}", channels=(channel,))).location_id
        for i in range(3)
    ]
    for i, location in enumerate(full):
        await _seed_level(inventory, location, a, MAX_LEVEL - 5, f"seed-{unique}-{i}")
    await expect(
        inventory.stub.RecordMovement(
            inv.RecordMovementRequest(
                request_id=f"{unique}-over",
                location_id=full[0],
                sku_code=a,
                kind=res.MOVEMENT_KIND_RECEIPT,
                quantity=6,
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await inventory.assert_ledger(full[0], a, MAX_LEVEL - 5)
    await inventory.receive(full[0], a, 5, f"{unique}-top")
    # a transfer that would push the target past the bound is refused at receipt
    transfer_id = await transfer(inventory, unique, full[1], full[0], [(a, 1)])
    await inventory.stub.ShipTransfer(
        inv.ShipTransferRequest(request_id=f"{unique}-ship", transfer_id=transfer_id)
    )
    await expect(
        inventory.stub.ReceiveTransfer(
            inv.ReceiveTransferRequest(request_id=f"{unique}-rcv", transfer_id=transfer_id)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await inventory.assert_ledger(full[0], a, MAX_LEVEL)
    got = await inventory.stub.GetAvailability(
        inv.GetAvailabilityRequest(channel=channel, sku_codes=[a], include_locations=True)
    )
    assert got.skus[0].on_hand == 3 * MAX_LEVEL - 11


async def test_senders_keys_cannot_take_the_keys_confirm_and_ship_need(inventory, unique):
    a = await inventory.track(f"NS-{unique}")
    store = (await inventory.location(f"NSS-{unique}")).location_id
    target = (await inventory.location(f"NST-{unique}")).location_id
    order = f"O-{unique}"
    squatter = f"reservation:{order}:{store}:{a}"
    sent = await inventory.stub.RecordMovement(
        inv.RecordMovementRequest(
            request_id=f"{unique}-1",
            location_id=store,
            sku_code=a,
            kind=res.MOVEMENT_KIND_RECEIPT,
            quantity=10,
            idempotency_key=squatter,
        )
    )
    assert sent.movement.idempotency_key == squatter  # shown as the sender wrote it
    await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=f"{unique}-2",
            order_id=order,
            lines=[res.ReservationLine(line_id="1", sku_code=a, location_id=store, quantity=2)],
        )
    )
    await inventory.stub.ConfirmReservation(
        inv.ConfirmReservationRequest(request_id=f"{unique}-3", order_id=order)
    )
    await inventory.assert_ledger(store, a, 8)

    transfer_id = await transfer(inventory, unique, store, target, [(a, 3)])
    for step in ("out", "in"):
        await inventory.stub.RecordMovement(
            inv.RecordMovementRequest(
                request_id=f"{unique}-{step}",
                location_id=store if step == "out" else target,
                sku_code=a,
                kind=res.MOVEMENT_KIND_RECEIPT,
                quantity=1,
                idempotency_key=f"transfer:{transfer_id}:{a}:{step}",
            )
        )
    await inventory.stub.ShipTransfer(
        inv.ShipTransferRequest(request_id=f"{unique}-ship", transfer_id=transfer_id)
    )
    await inventory.stub.ReceiveTransfer(
        inv.ReceiveTransferRequest(request_id=f"{unique}-rcv", transfer_id=transfer_id)
    )
    await inventory.assert_ledger(store, a, 6)
    await inventory.assert_ledger(target, a, 4)
    # the sender's key still deduplicates the sender's own retry
    again = await inventory.stub.RecordMovement(
        inv.RecordMovementRequest(
            request_id=f"{unique}-1b",
            location_id=store,
            sku_code=a,
            kind=res.MOVEMENT_KIND_RECEIPT,
            quantity=10,
            idempotency_key=squatter,
        )
    )
    assert again.movement.movement_id == sent.movement.movement_id
    await inventory.assert_ledger(store, a, 6)


async def test_a_bad_import_file_is_invalid_argument_and_applies_nothing(inventory, unique):
    a = await inventory.track(f"CSV-{unique}")
    store = (await inventory.location(f"CSV-{unique}")).location_id
    header = "location_id,sku_code,kind,quantity,idempotency_key,reason\n"
    good = f"{store},{a},receipt,5,csv-{unique}-1,\n"
    files = [
        (header + good + f"{store},{a},receipt,5,k," + "x" * 140_000 + "\n").encode(),
        header.encode() + b"\xff\xfe\n",
        (header + good + f"{store},{a},rec\x00eipt,1,,\n").encode(),
    ]
    said = []
    for i, content in enumerate(files):
        error = await expect(
            inventory.stub.ImportStock(
                inv.ImportStockRequest(request_id=f"{unique}-{i}", csv_file=content)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        [(field, description)] = field_violations(error)
        assert field == "csv_file"
        said.append(description)
    assert said[0].startswith("row 2 is not valid CSV")
    assert "UTF-8" in said[1]
    assert said[2] == "line 3 contains a NUL character"
    assert await inventory.scalar("SELECT count(*) FROM stock_levels WHERE sku_code = :s", s=a) == 0


async def test_text_and_location_bounds_and_update_keeps_active(inventory, unique):
    a = await inventory.track(f"TX-{unique}")
    location = await inventory.location(f"TX-{unique}")
    await expect_field(
        inventory.stub.RecordMovement(
            inv.RecordMovementRequest(
                request_id=f"{unique}-ref",
                location_id=location.location_id,
                sku_code=a,
                kind=res.MOVEMENT_KIND_RECEIPT,
                quantity=1,
                reference="r" * 201,
            )
        ),
        "reference",
    )
    await expect_field(
        inventory.stub.SetSafetyStock(
            inv.SetSafetyStockRequest(
                request_id=f"{unique}-safe",
                location_id=location.location_id,
                sku_code=a,
                safety_stock=INT64_MAX,
            )
        ),
        "safety_stock",
    )
    huge = res.Location()
    huge.CopyFrom(location)
    huge.default_safety_stock = INT64_MAX
    await expect_field(
        inventory.stub.UpdateLocation(
            inv.UpdateLocationRequest(request_id=f"{unique}-huge", location=huge)
        ),
        "location.default_safety_stock",
    )
    # an update that does not mention active keeps it; saying false deactivates
    renamed = res.Location()
    renamed.CopyFrom(location)
    renamed.ClearField("active")
    renamed.name = "Renamed"
    kept = await inventory.stub.UpdateLocation(
        inv.UpdateLocationRequest(request_id=f"{unique}-keep", location=renamed)
    )
    assert (kept.location.name, kept.location.active) == ("Renamed", True)
    renamed.active = False
    off = await inventory.stub.UpdateLocation(
        inv.UpdateLocationRequest(request_id=f"{unique}-off", location=renamed)
    )
    assert off.location.HasField("active") and off.location.active is False
    renamed.ClearField("active")
    renamed.name = "Still off"
    still = await inventory.stub.UpdateLocation(
        inv.UpdateLocationRequest(request_id=f"{unique}-still", location=renamed)
    )
    assert (still.location.name, still.location.active) == ("Still off", False)


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0


async def test_business_metrics_count_only_committed_work(inventory, unique):
    a = await inventory.track(f"MT-{unique}-A")
    b = await inventory.track(f"MT-{unique}-B")
    store = (await inventory.location(f"MT-{unique}")).location_id
    for sku in (a, b):
        await inventory.receive(store, sku, 5, f"{unique}-{sku}")
    order = f"O-{unique}"
    await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=f"{unique}-hold",
            order_id=order,
            lines=[
                res.ReservationLine(line_id="1", sku_code=a, location_id=store, quantity=2),
                res.ReservationLine(line_id="2", sku_code=b, location_id=store, quantity=2),
            ],
        )
    )
    await inventory.stub.RecordCount(
        inv.RecordCountRequest(
            request_id=f"{unique}-count", location_id=store, sku_code=b, counted_quantity=1
        )
    )
    sales = counted("omni_inventory_movements_total", kind="sale")
    confirmed = counted("omni_inventory_reservation_endings_total", status="confirmed")
    # the second line can't leave (a count found less): the whole confirm rolls back, and
    # the first line's sale, written before the refusal, is not counted either
    await expect(
        inventory.stub.ConfirmReservation(
            inv.ConfirmReservationRequest(request_id=f"{unique}-c1", order_id=order)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await inventory.assert_ledger(store, a, 5)
    assert counted("omni_inventory_movements_total", kind="sale") == sales
    await inventory.stub.RecordCount(
        inv.RecordCountRequest(
            request_id=f"{unique}-recount", location_id=store, sku_code=b, counted_quantity=5
        )
    )
    for attempt in ("c2", "c2"):  # the retry answers from the record and counts nothing
        await inventory.stub.ConfirmReservation(
            inv.ConfirmReservationRequest(request_id=f"{unique}-{attempt}", order_id=order)
        )
    assert counted("omni_inventory_movements_total", kind="sale") - sales == 2
    assert counted("omni_inventory_reservation_endings_total", status="confirmed") - confirmed == 1
