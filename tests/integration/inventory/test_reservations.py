"""Reservations over the wire: all-or-nothing, idempotent per order and per request,
confirm/release/move, expiry by the sweeper (also with two sweepers at once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv

from libs.grpc_errors import field_violations
from libs.testing.services import eventually
from services.inventory.service_layer.reservations import expire_due


def line(line_id, sku, location_id, quantity):
    return res.ReservationLine(
        line_id=line_id, sku_code=sku, location_id=location_id, quantity=quantity
    )


async def reserve(inventory, request_id, order_id, lines, **extra):
    return await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=request_id, order_id=order_id, channel="mall", lines=lines, **extra
        ),
        timeout=10,
    )


async def stocked(inventory, unique, *quantities):
    """One store and one SKU per quantity, received there."""
    store = (await inventory.location(f"ST-{unique}")).location_id
    skus = []
    for i, quantity in enumerate(quantities):
        sku = await inventory.track(f"RES-{unique}-{i}")
        await inventory.receive(store, sku, quantity, f"{unique}-in-{i}")
        skus.append(sku)
    return store, skus


async def test_reserve_is_all_or_nothing(inventory, unique):
    store, (a, b) = await stocked(inventory, unique, 5, 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reserve(
            inventory,
            f"{unique}-1",
            f"O-{unique}",
            [line("1", a, store, 3), line("2", b, store, 2)],
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert b in (caught.value.details() or "")
    assert (await inventory.level(store, a)).reserved == 0
    assert (await inventory.level(store, b)).reserved == 0
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await inventory.stub.GetReservation(inv.GetReservationRequest(order_id=f"O-{unique}"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # Retrying the same request after stock arrived does the work (a refusal is not stored).
    await inventory.receive(store, b, 1, f"{unique}-more")
    held = await reserve(
        inventory, f"{unique}-1", f"O-{unique}", [line("1", a, store, 3), line("2", b, store, 2)]
    )
    assert held.reservation.status == res.RESERVATION_STATUS_ACTIVE
    level_a, level_b = await inventory.level(store, a), await inventory.level(store, b)
    assert (level_a.reserved, level_a.available) == (3, 2)
    assert (level_b.reserved, level_b.available) == (2, 0)


async def test_reserve_is_idempotent_per_request_and_per_order(inventory, unique):
    store, (a,) = await stocked(inventory, unique, 10)
    lines = [line("1", a, store, 4)]
    first = await reserve(inventory, f"{unique}-1", f"O-{unique}", lines)
    assert await reserve(inventory, f"{unique}-1", f"O-{unique}", lines) == first
    # The order service retrying under a new request id: the same hold, not a second one.
    second = await reserve(inventory, f"{unique}-2", f"O-{unique}", lines)
    assert second.reservation.lines == first.reservation.lines
    assert (await inventory.level(store, a)).reserved == 4
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await reserve(inventory, f"{unique}-3", f"O-{unique}", [line("1", a, store, 5)])
    assert other.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await inventory.level(store, a)).reserved == 4


async def test_confirm_takes_goods_out_and_release_gives_them_back(inventory, unique):
    store, (a,) = await stocked(inventory, unique, 10)
    await reserve(inventory, f"{unique}-1", f"O1-{unique}", [line("1", a, store, 4)])
    await reserve(inventory, f"{unique}-2", f"O2-{unique}", [line("1", a, store, 3)])
    confirmed = await inventory.stub.ConfirmReservation(
        inv.ConfirmReservationRequest(request_id=f"{unique}-3", order_id=f"O1-{unique}")
    )
    assert confirmed.reservation.status == res.RESERVATION_STATUS_CONFIRMED
    level = await inventory.level(store, a)
    assert (level.on_hand, level.reserved, level.available) == (6, 3, 3)
    await inventory.assert_ledger(store, a, 6)
    # Confirming again (new request id) changes nothing; releasing a confirmed one is refused.
    await inventory.stub.ConfirmReservation(
        inv.ConfirmReservationRequest(request_id=f"{unique}-4", order_id=f"O1-{unique}")
    )
    await inventory.assert_ledger(store, a, 6)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.stub.ReleaseReservation(
            inv.ReleaseReservationRequest(request_id=f"{unique}-5", order_id=f"O1-{unique}")
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    released = await inventory.stub.ReleaseReservation(
        inv.ReleaseReservationRequest(request_id=f"{unique}-6", order_id=f"O2-{unique}")
    )
    assert released.reservation.status == res.RESERVATION_STATUS_RELEASED
    await inventory.stub.ReleaseReservation(
        inv.ReleaseReservationRequest(request_id=f"{unique}-7", order_id=f"O2-{unique}")
    )
    level = await inventory.level(store, a)
    assert (level.on_hand, level.reserved, level.available) == (6, 0, 6)
    await inventory.assert_ledger(store, a, 6)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await inventory.stub.ConfirmReservation(
            inv.ConfirmReservationRequest(request_id=f"{unique}-8", order_id=f"NOPE-{unique}")
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_move_holds_the_line_at_the_other_location_or_changes_nothing(inventory, unique):
    store, (a,) = await stocked(inventory, unique, 5)
    other = (await inventory.location(f"OT-{unique}")).location_id
    await inventory.receive(other, a, 2, f"{unique}-other")
    await reserve(inventory, f"{unique}-1", f"O-{unique}", [line("1", a, store, 3)])
    with pytest.raises(grpc.aio.AioRpcError) as short:
        await inventory.stub.MoveReservation(
            inv.MoveReservationRequest(
                request_id=f"{unique}-2", order_id=f"O-{unique}", line_id="1", to_location_id=other
            )
        )
    assert short.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await inventory.level(store, a)).reserved == 3
    await inventory.receive(other, a, 1, f"{unique}-other-2")
    moved = await inventory.stub.MoveReservation(
        inv.MoveReservationRequest(
            request_id=f"{unique}-3", order_id=f"O-{unique}", line_id="1", to_location_id=other
        )
    )
    assert moved.reservation.lines[0].location_id == other
    assert (await inventory.level(store, a)).reserved == 0
    assert (await inventory.level(other, a)).reserved == 3


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("zero", "lines[0].quantity"),
        ("negative", "lines[0].quantity"),
        ("unknown_sku", "lines[0].sku_code"),
        ("unknown_location", "lines[0].location_id"),
        ("no_order", "order_id"),
        ("no_lines", "lines"),
        ("wrong_channel", "lines[0].location_id"),
    ],
)
async def test_bad_reservation_is_invalid_argument_and_holds_nothing(
    inventory, unique, case, field
):
    store, (a,) = await stocked(inventory, unique, 5)
    request = inv.ReserveRequest(
        request_id=f"{unique}-bad",
        order_id=f"O-{unique}",
        channel="mall",
        lines=[line("1", a, store, 1)],
    )
    if case == "zero":
        request.lines[0].quantity = 0
    elif case == "negative":
        request.lines[0].quantity = -1
    elif case == "unknown_sku":
        request.lines[0].sku_code = f"NOPE-{unique}"
    elif case == "unknown_location":
        request.lines[0].location_id = f"NOPE-{unique}"
    elif case == "no_order":
        request.order_id = ""
    elif case == "no_lines":
        del request.lines[:]
    elif case == "wrong_channel":
        request.channel = "tmall"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inventory.stub.Reserve(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(caught.value)]
    assert (await inventory.level(store, a)).reserved == 0
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM reservations WHERE order_id = :o", o=f"O-{unique}"
        )
        == 0
    )


async def test_sweeper_expires_a_reservation_and_announces_it(inventory, unique):
    store, (a,) = await stocked(inventory, unique, 5)
    await reserve(inventory, f"{unique}-1", f"O-{unique}", [line("1", a, store, 2)], ttl_seconds=1)
    assert (await inventory.level(store, a)).reserved == 2

    async def expired():
        got = await inventory.stub.GetReservation(inv.GetReservationRequest(order_id=f"O-{unique}"))
        assert got.reservation.status == res.RESERVATION_STATUS_EXPIRED
        return got

    await eventually(expired, timeout=15)
    level = await inventory.level(store, a)
    assert (level.reserved, level.available) == (0, 5)
    await inventory.assert_ledger(store, a, 5)
    assert (
        await inventory.outbox_count("omni.inventory.v1.ReservationExpiredEvent", f"O-{unique}")
        == 1
    )
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await inventory.stub.ConfirmReservation(
            inv.ConfirmReservationRequest(request_id=f"{unique}-2", order_id=f"O-{unique}")
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_two_sweepers_expire_each_reservation_exactly_once(inventory, unique):
    store, (a,) = await stocked(inventory, unique, 40)
    for i in range(20):
        await reserve(
            inventory, f"{unique}-{i}", f"O-{unique}-{i}", [line("1", a, store, 2)], ttl_seconds=600
        )
    assert (await inventory.level(store, a)).reserved == 40
    # Sweep as of a moment after they are due, as two replicas would, with small batches.
    later = datetime.now(UTC) + timedelta(seconds=601)

    async def sweeper() -> int:
        total = 0
        while True:
            n = await expire_due(inventory.uow_factory, later, limit=3)
            if n == 0:
                return total
            total += n

    counts = await asyncio.gather(sweeper(), sweeper())
    mine = await inventory.scalar(
        "SELECT count(*) FROM reservations WHERE order_id LIKE :o AND status = 'expired'",
        o=f"O-{unique}-%",
    )
    assert mine == 20
    assert sum(counts) >= 20  # other tests' due reservations may be swept too
    assert (await inventory.level(store, a)).reserved == 0
    assert (
        await inventory.outbox_count("omni.inventory.v1.ReservationExpiredEvent", f"O-{unique}-%")
        == 20
    )


async def test_concurrent_multi_line_reservations_in_opposite_orders_never_deadlock(
    inventory, unique
):
    """Lines listed A,B by half the orders and B,A by the others: rows are locked in one
    (location, sku) order, so they queue instead of deadlocking, and each SKU's 10 units go
    to exactly 10 orders in full."""
    store, (a, b) = await stocked(inventory, unique, 10, 10)

    async def attempt(i: int) -> grpc.StatusCode:
        pair = [line("1", a, store, 1), line("2", b, store, 1)]
        try:
            await reserve(
                inventory, f"{unique}-{i}", f"O-{unique}-{i}", pair[:: 1 if i % 2 else -1]
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(attempt(i) for i in range(30)))
    assert codes.count(grpc.StatusCode.OK) == 10
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) == 20
    for sku in (a, b):
        level = await inventory.level(store, sku)
        assert (level.on_hand, level.reserved) == (10, 10)
