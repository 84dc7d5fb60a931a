"""Crashes inside a step, against the real inventory service: the order service is stopped
(an exception out of the step, the lease given up) exactly between an inventory call and the
commit that records it, then resumed by the running service's recovery task.

The stopped driver is a second order context on the same database whose inventory client
does the real call and then "dies"; everything else is the real service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.order.v1 import order_pb2 as pb

from libs.testing.services import eventually
from services.order.adapters import order_store
from services.order.adapters.catalog_client import CatalogClient
from services.order.adapters.inventory_client import HoldLine, InventoryClient
from services.order.domain.order import Order
from services.order.domain.orders import Address, AisleHandover, Mode, NewLine, NewOrder, Payment
from services.order.domain.state_machine import OrderStatus
from services.order.service_layer import workflow
from services.order.service_layer.context import OrderConfig, OrderContext
from tests.e2e.order.conftest import SH, World, insert_captured


class Crash(Exception):
    """The process died here."""


def new_order(channel: str, channel_order_id: str, mode: Mode, skus: Sequence[str]) -> NewOrder:
    return NewOrder(
        channel_id=channel,
        channel_kind=str(pb.CHANNEL_KIND_OWN_ONLINE),
        channel_order_id=channel_order_id,
        member_id="M-1",
        guest_contact="",
        mode=mode,
        aisle_handover=AisleHandover.NONE,
        selling_store_id="",
        selling_guide_staff_id="",
        referring_guide_code="",
        pickup_store_id="",
        address=Address(city="Shanghai", latitude=SH[0], longitude=SH[1]),
        lines=tuple(NewLine(sku, 1, 1000, 0, "CNY") for sku in skus),
        payment=Payment.PAID_ONLINE,
        stock_channel=channel,
    )


async def capture_with(ctx: OrderContext, order: NewOrder) -> str:
    """What CaptureOrder writes once the request is checked (the test then drives it)."""
    return await insert_captured(ctx.pg, order, {line.sku_code: "TOPS" for line in order.lines})


async def stored(world: World, order_id: str) -> Order:
    async with world.order_pg.connection() as conn:
        found = await order_store.load(conn, order_id)
    assert found is not None
    return found


def context(world: World, inventory: InventoryClient) -> OrderContext:
    # A long lease: the running service must not take the order over while this driver
    # is still "alive".
    return OrderContext(
        world.order_pg,
        inventory,
        CatalogClient(world.order_settings),
        OrderConfig(lease_seconds=60),
    )


async def test_a_crash_after_giving_back_a_hold_never_leaves_the_order_holding_nothing(
    world: World, unique: str
) -> None:
    """A split order: leg 1 is held, leg 2 refused (its stock went since routing); the
    compensation gives back leg 1 and the process dies before recording it. Replaying
    leg 1's hold returns inventory's first success — for a hold that no longer holds
    anything. The resumed order must not become paid on it: it is routed again and holds
    every unit it was allocated."""
    ch = f"cw-{unique}"
    a = await world.sku(f"CWA-{unique}-1")
    b = await world.sku(f"CWB-{unique}-1")
    near = await world.location(f"CWN-{unique}", ch)
    far = await world.location(f"CWF-{unique}", ch, city="Hangzhou", at=(30.27, 120.15))
    await world.stock(near, a, 1)
    await world.stock(far, b, 1)
    calls: list[str] = []

    async def move(location_id: str, quantity: int, key: str) -> None:
        await world.inventory.RecordMovement(
            inv.RecordMovementRequest(
                request_id=key,
                location_id=location_id,
                sku_code=b,
                kind=res.MOVEMENT_KIND_ADJUSTMENT,
                quantity=quantity,
                reason="test",
            ),
            timeout=10,
        )

    class DiesAfterGivingBack(InventoryClient):
        async def reserve(self, key: str, channel: str, lines: Sequence[HoldLine]) -> None:
            calls.append(f"reserve {lines[0].location_id}")
            if lines[0].location_id == far:
                await move(far, -1, f"gone-{unique}")  # someone took it since routing
            await super().reserve(key, channel, lines)

        async def release(self, key: str, reason: str) -> None:
            calls.append(f"release {key}")
            await super().release(key, reason)
            await move(far, 1, f"back-{unique}")  # and it comes back at once
            raise Crash

    dying = DiesAfterGivingBack(world.order_settings)
    ctx = context(world, dying)
    try:
        order_id = await capture_with(
            ctx, new_order(ch, f"c-{unique}", Mode.EXPRESS_DELIVERY, [a, b])
        )
        with pytest.raises(Crash):
            await workflow.drive(ctx, order_id)
    finally:
        await dying.close()
    first_key = f"{order_id}.1.1"
    assert calls == [f"reserve {near}", f"reserve {far}", f"release {first_key}"]
    given_back = await world.inventory.GetReservation(
        inv.GetReservationRequest(order_id=first_key), timeout=10
    )
    assert given_back.reservation.status == res.RESERVATION_STATUS_RELEASED

    # The crash window: still RESERVING with attempt 1's legs, leg 1 released at inventory.
    assert (await stored(world, order_id)).status is OrderStatus.RESERVING

    async def allocated() -> None:
        assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_ALLOCATED

    await eventually(allocated, timeout=30)
    assert await world.levels(near, a) == (1, 1)
    assert await world.levels(far, b) == (1, 1)
    detail = await world.get(order_id)
    assert detail.routing.attempt == 2
    for leg in (await stored(world, order_id)).fulfilments:
        held = await world.inventory.GetReservation(
            inv.GetReservationRequest(order_id=leg.reservation_key), timeout=10
        )
        assert held.reservation.status == res.RESERVATION_STATUS_ACTIVE, leg.reservation_key
    assert any("given back before a restart" in h.note for h in detail.history)


async def test_a_transfer_asked_for_just_before_a_crash_is_called_off_by_the_cancel(
    world: World, unique: str
) -> None:
    """Allocation asked inventory for the transfer to the pickup store; the answer (its id)
    was lost when the process died, and the customer cancelled meanwhile. The cancel still
    finds the transfer (same request id) and calls it off."""
    ch = f"ct-{unique}"
    sku = await world.sku(f"CTS-{unique}-1")
    store = await world.location(f"CTP-{unique}", ch)
    source = await world.location(f"CTR-{unique}", ch, at=(31.3, 121.5))
    await world.stock(source, sku, 2)
    requested: list[str] = []

    class DiesAfterAsking(InventoryClient):
        async def request_transfer(
            self, request_id: str, from_id: str, to_id: str, lines: dict[str, int], reason: str
        ) -> str:
            transfer_id = await super().request_transfer(request_id, from_id, to_id, lines, reason)
            requested.append(transfer_id)
            # The customer cancels while the allocation is in flight ...
            async with ctx.uow() as uow:
                cancelled = await uow.get(order_id)
                cancelled.request_cancel("customer", datetime.now(UTC))
                await uow.save(cancelled)
                await uow.commit()
            raise Crash  # ... and the allocating process dies before recording the id.

    dying = DiesAfterAsking(world.order_settings)
    ctx = context(world, dying)
    pickup = replace(
        new_order(ch, f"c-{unique}", Mode.STORE_PICKUP, [sku]), pickup_store_id=store, address=None
    )
    try:
        order_id = await capture_with(ctx, pickup)
        with pytest.raises(Crash):
            await workflow.drive(ctx, order_id)
    finally:
        await dying.close()
    (transfer_id,) = requested
    row = await stored(world, order_id)
    (leg,) = row.fulfilments
    assert row.status is OrderStatus.CANCELLING
    assert leg.transfer_requested and not leg.transfer_id

    async def cancelled() -> None:
        assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_CANCELLED

    await eventually(cancelled, timeout=30)
    transfer = await world.inventory.GetTransfer(
        inv.GetTransferRequest(transfer_id=transfer_id), timeout=10
    )
    assert transfer.transfer.status == res.TRANSFER_STATUS_CANCELLED
    assert await world.levels(source, sku) == (2, 0)
    detail = await world.get(order_id)
    assert any(f"transfer {transfer_id} cancelled" in h.note for h in detail.history)
