"""CancelTransfer: a requested transfer can be called off (once per request id, then a
no-op), a shipped one cannot; the source's stock is as before and the event is written."""

from __future__ import annotations

import grpc
import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv

from libs.grpc_errors import field_violations

CANCELLED_EVENT = "omni.inventory.v1.TransferCancelledEvent"


async def _requested(inventory, unique: str, quantity: int = 2) -> tuple[str, str, str, str]:
    sku = await inventory.track(f"TC-{unique}-A")
    source = (await inventory.location(f"TCS-{unique}")).location_id
    target = (await inventory.location(f"TCD-{unique}")).location_id
    await inventory.receive(source, sku, 5, f"{unique}-rcv")
    requested = await inventory.stub.RequestTransfer(
        inv.RequestTransferRequest(
            request_id=f"{unique}-req",
            from_location_id=source,
            to_location_id=target,
            lines=[res.SkuQuantity(sku_code=sku, quantity=quantity)],
            reason="pickup order",
        ),
        timeout=10,
    )
    return requested.transfer.transfer_id, sku, source, target


async def test_a_requested_transfer_is_cancelled_once_and_stock_is_untouched(
    inventory, unique
) -> None:
    transfer_id, sku, source, target = await _requested(inventory, unique)
    before = await inventory.level(source, sku)

    cancel = inv.CancelTransferRequest(
        request_id=f"{unique}-cancel", transfer_id=transfer_id, reason="order cancelled"
    )
    done = await inventory.stub.CancelTransfer(cancel, timeout=10)
    assert done.transfer.status == res.TRANSFER_STATUS_CANCELLED
    again = await inventory.stub.CancelTransfer(cancel, timeout=10)  # a retry
    assert again == done
    other = await inventory.stub.CancelTransfer(
        inv.CancelTransferRequest(request_id=f"{unique}-cancel2", transfer_id=transfer_id),
        timeout=10,
    )
    assert other.transfer.status == res.TRANSFER_STATUS_CANCELLED
    got = await inventory.stub.GetTransfer(
        inv.GetTransferRequest(transfer_id=transfer_id), timeout=10
    )
    assert got.transfer.status == res.TRANSFER_STATUS_CANCELLED

    after = await inventory.level(source, sku)
    assert (after.on_hand, after.reserved, after.available) == (
        before.on_hand,
        before.reserved,
        before.available,
    )
    assert (await inventory.level(target, sku)).in_transit == 0
    await inventory.assert_ledger(source, sku, 5)
    assert await inventory.outbox_count(CANCELLED_EVENT, transfer_id) == 1

    # A cancelled transfer cannot ship any more.
    with pytest.raises(grpc.aio.AioRpcError) as shipped:
        await inventory.stub.ShipTransfer(
            inv.ShipTransferRequest(request_id=f"{unique}-ship", transfer_id=transfer_id),
            timeout=10,
        )
    assert shipped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await inventory.assert_ledger(source, sku, 5)


async def test_a_shipped_transfer_cannot_be_cancelled(inventory, unique) -> None:
    transfer_id, sku, _source, target = await _requested(inventory, unique)
    await inventory.stub.ShipTransfer(
        inv.ShipTransferRequest(request_id=f"{unique}-ship", transfer_id=transfer_id),
        timeout=10,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.stub.CancelTransfer(
            inv.CancelTransferRequest(request_id=f"{unique}-cancel", transfer_id=transfer_id),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = await inventory.stub.GetTransfer(
        inv.GetTransferRequest(transfer_id=transfer_id), timeout=10
    )
    assert got.transfer.status == res.TRANSFER_STATUS_IN_TRANSIT
    assert (await inventory.level(target, sku)).in_transit == 2
    assert await inventory.outbox_count(CANCELLED_EVENT, transfer_id) == 0


async def test_bad_cancel_requests(inventory, unique) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await inventory.stub.CancelTransfer(
            inv.CancelTransferRequest(request_id=f"{unique}-1", transfer_id=f"nope-{unique}"),
            timeout=10,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await inventory.stub.CancelTransfer(
            inv.CancelTransferRequest(request_id=f"{unique}-2"), timeout=10
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(empty.value)] == ["transfer_id"]
    transfer_id, *_ = await _requested(inventory, unique)
    with pytest.raises(grpc.aio.AioRpcError) as long_reason:
        await inventory.stub.CancelTransfer(
            inv.CancelTransferRequest(
                request_id=f"{unique}-3", transfer_id=transfer_id, reason="x" * 501
            ),
            timeout=10,
        )
    assert long_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(long_reason.value)] == ["reason"]
    got = await inventory.stub.GetTransfer(
        inv.GetTransferRequest(transfer_id=transfer_id), timeout=10
    )
    assert got.transfer.status == res.TRANSFER_STATUS_REQUESTED
