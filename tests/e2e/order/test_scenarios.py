"""Split orders, transfers to the pickup store, unpaid expiry, cancel after reservation,
returns in another store, the unfillable queue — stock, fulfilment orders and events."""

from __future__ import annotations

import grpc
import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc

from libs.testing.services import eventually
from services.order.domain.orders import (
    Address,
    AisleHandover,
    Mode,
    NewLine,
    NewOrder,
    Payment,
)
from tests.e2e.order.conftest import HZ, World, address, insert_captured, line


async def test_split_when_no_location_has_everything(world: World, unique: str) -> None:
    ch = f"split-{unique}"
    a = await world.sku(f"A-{unique}-1")
    b = await world.sku(f"B-{unique}-1")
    wa = await world.location(f"WA-{unique}", ch)
    wb = await world.location(f"WB-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(wa, a, 5)
    await world.stock(wb, b, 5)

    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(a, 1), line(b, 2)], delivery_address=address()
    )
    assert got.order.status == pb.ORDER_STATUS_ALLOCATED
    by_location = {f.location_id: list(f.line_ids) for f in got.order.fulfilments}
    assert by_location == {wa: ["L1"], wb: ["L2"]}
    assert await world.levels(wa, a) == (5, 1)
    assert await world.levels(wb, b) == (5, 2)
    allocated = await world.topic.wait_for(got.order.order_id, "OrderAllocatedEvent")
    assert len(allocated.fulfilment_orders) == 2

    # Each fulfilment order ships on its own; the order completes with the last one.
    detail = await world.get(got.order.order_id)
    first, second = detail.fulfilment_orders
    await world.step("ShipFulfilment", first.fulfilment_id, f"s1-{unique}")
    assert (await world.get(got.order.order_id)).order.status == pb.ORDER_STATUS_SHIPPED
    await world.step("ConfirmDelivery", first.fulfilment_id, f"d1-{unique}")
    assert (await world.get(got.order.order_id)).order.status == pb.ORDER_STATUS_SHIPPED
    await world.step("ShipFulfilment", second.fulfilment_id, f"s2-{unique}")
    done = await world.step("ConfirmDelivery", second.fulfilment_id, f"d2-{unique}")
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(wa, a) == (4, 0)
    assert await world.levels(wb, b) == (3, 0)


async def test_pickup_at_a_store_without_stock_transfers_to_it(world: World, unique: str) -> None:
    ch = f"xfer-{unique}"
    sku = await world.sku(f"SHOE-{unique}-42")
    store = await world.location(f"PS-{unique}", ch)
    source = await world.location(f"SRC-{unique}", ch, at=(31.3, 121.5))
    await world.stock(source, sku, 3)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_PICKUP,
        pickup_store_id=store,
        lines=[line(sku, 1)],
    )
    (winner,) = [c for c in got.routing.candidates if c.chosen]
    assert winner.location_id == source and winner.via_transfer
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert fo.transfer_id and fo.location_id == source and fo.handover_store_id == store
    transfer = await world.inventory.GetTransfer(
        inv.GetTransferRequest(transfer_id=fo.transfer_id), timeout=10
    )
    assert transfer.transfer.to_location_id == store
    assert await world.levels(source, sku) == (3, 1)

    # A store-pickup order cannot be "picked up" before the goods arrived.
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await world.step("ConfirmDelivery", fo.fulfilment_id, f"early-{unique}")
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    moving = await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}")
    assert moving.fulfilment_order.status == pb.FULFILMENT_STATUS_TRANSFER_IN_TRANSIT
    assert await world.levels(source, sku) == (2, 0)
    assert (await world.level(store, sku)).in_transit == 1
    ready = await world.step("MarkReadyForPickup", fo.fulfilment_id, f"r-{unique}")
    assert ready.fulfilment_order.status == pb.FULFILMENT_STATUS_READY_FOR_PICKUP
    assert await world.levels(store, sku) == (1, 1)
    done = await world.step("ConfirmDelivery", fo.fulfilment_id, f"p-{unique}")
    assert done.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(store, sku) == (0, 0)
    assert await world.levels(source, sku) == (2, 0)
    await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")


async def test_endless_aisle_picked_up_in_the_selling_store(world: World, unique: str) -> None:
    ch = f"eap-{unique}"
    sku = await world.sku(f"COAT-{unique}-M")
    store = await world.location(f"ES-{unique}", ch)
    source = await world.location(f"ESRC-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(source, sku, 2)
    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_STORE,
        fulfilment_mode=pb.FULFILMENT_MODE_ENDLESS_AISLE,
        endless_aisle_handover=pb.ENDLESS_AISLE_HANDOVER_PICKUP_IN_SELLING_STORE,
        selling_store_id=store,
        payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
        lines=[line(sku, 1)],
    )
    (fo,) = (await world.get(got.order.order_id)).fulfilment_orders
    assert fo.transfer_id and fo.handover_store_id == store
    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}")
    await world.step("MarkReadyForPickup", fo.fulfilment_id, f"r-{unique}")
    await world.step("ConfirmDelivery", fo.fulfilment_id, f"p-{unique}")
    assert await world.levels(source, sku) == (1, 0)
    assert await world.levels(store, sku) == (0, 0)
    await world.topic.wait_for(got.order.order_id, "OrderCompletedEvent")


async def test_unpaid_order_expires_and_releases_its_stock(world: World, unique: str) -> None:
    ch = f"unpaid-{unique}"
    sku = await world.sku(f"HAT-{unique}-U")
    wh = await world.location(f"UW-{unique}", ch)
    await world.stock(wh, sku, 2)
    rules = await world.order.SetRoutingRules(
        svc.SetRoutingRulesRequest(
            request_id=f"rules-{unique}",
            rules=pb.RoutingRules(channel_id=ch, same_city_first=True, payment_timeout_seconds=1),
        ),
        timeout=10,
    )
    assert rules.rules.version == 1

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
        lines=[line(sku, 2)],
        delivery_address=address(),
    )
    assert got.order.status == pb.ORDER_STATUS_RESERVED
    assert got.routing.rules_version == 1
    assert await world.levels(wh, sku) == (2, 2)

    async def cancelled() -> None:
        order = (await world.get(got.order.order_id)).order
        assert order.status == pb.ORDER_STATUS_CANCELLED

    await eventually(cancelled, timeout=20)
    assert (await world.get(got.order.order_id)).order.cancel_reason == "unpaid_expired"
    assert await world.levels(wh, sku) == (2, 0)
    event = await world.topic.wait_for(got.order.order_id, "OrderCancelledEvent")
    assert event.reason == "unpaid_expired"
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await world.order.PayOrder(
            svc.PayOrderRequest(
                request_id=f"pay-{unique}",
                order_id=got.order.order_id,
                payment_state=pb.PAYMENT_STATE_PAID_ONLINE,
            ),
            timeout=10,
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_pay_then_cancel_after_reservation_releases_stock(world: World, unique: str) -> None:
    ch = f"cancel-{unique}"
    sku = await world.sku(f"SOCK-{unique}-X")
    wh = await world.location(f"CW-{unique}", ch)
    await world.stock(wh, sku, 4)
    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
        lines=[line(sku, 3)],
        delivery_address=address(),
    )
    assert got.order.status == pb.ORDER_STATUS_RESERVED
    assert await world.levels(wh, sku) == (4, 3)
    cancelled = await world.order.CancelOrder(
        svc.CancelOrderRequest(request_id=f"x-{unique}", order_id=got.order.order_id), timeout=10
    )
    assert cancelled.order.status == pb.ORDER_STATUS_CANCELLED
    assert await world.levels(wh, sku) == (4, 0)
    await world.topic.wait_for(got.order.order_id, "OrderCancelledEvent")
    history = (await world.get(got.order.order_id)).history
    assert [h.to_status for h in history][-2:] == [
        pb.ORDER_STATUS_CANCELLING,
        pb.ORDER_STATUS_CANCELLED,
    ]

    # A paid, allocated order can be cancelled too, but not once it shipped.
    paid = await world.capture(
        f"c2-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
    )
    (fo,) = (await world.get(paid.order.order_id)).fulfilment_orders
    await world.step("ShipFulfilment", fo.fulfilment_id, f"s-{unique}")
    with pytest.raises(grpc.aio.AioRpcError) as shipped:
        await world.order.CancelOrder(
            svc.CancelOrderRequest(request_id=f"x2-{unique}", order_id=paid.order.order_id),
            timeout=10,
        )
    assert shipped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await world.levels(wh, sku) == (3, 0)


async def test_return_in_a_different_store_restocks_there_and_refunds_per_line(
    world: World, unique: str
) -> None:
    ch = f"ret-{unique}"
    sku = await world.sku(f"DRS-{unique}-S")
    other = await world.sku(f"BLT-{unique}-S")
    sold_at = await world.location(f"SA-{unique}", ch)
    back_at = await world.location(f"SB-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(sold_at, sku, 3)
    await world.stock(sold_at, other, 1)
    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_STORE,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_SALE,
        selling_store_id=sold_at,
        payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
        member_id=f"M-{unique}",
        # 3 x 33.33 with 1.00 off: 98.99, which does not split evenly per unit.
        lines=[line(sku, 3, 3333, 100), line(other, 1, 2000)],
    )
    order_id = got.order.order_id
    assert got.order.status == pb.ORDER_STATUS_COMPLETED
    assert await world.levels(sold_at, sku) == (0, 0)

    first = await world.order.ReceiveReturn(
        svc.ReceiveReturnRequest(
            request_id=f"r1-{unique}",
            order_id=order_id,
            receiving_location_id=back_at,
            lines=[
                pb.ReturnLineRequest(
                    line_id="L1", quantity=2, condition=pb.RETURN_CONDITION_RESALEABLE
                ),
                pb.ReturnLineRequest(
                    line_id="L2", quantity=1, condition=pb.RETURN_CONDITION_DAMAGED
                ),
            ],
        ),
        timeout=10,
    )
    refunds = {r.line_id: r.refund.amount_minor for r in first.order_return.lines}
    assert refunds == {"L1": 9899 * 2 // 3, "L2": 2000}
    assert await world.levels(back_at, sku) == (2, 0)  # restocked where it came back
    assert await world.levels(back_at, other) == (0, 0)  # damaged: not restocked
    assert await world.levels(sold_at, sku) == (0, 0)
    event = await world.topic.wait_for(order_id, "OrderReturnReceivedEvent")
    assert event.receiving_location_id == back_at
    assert event.member_id == f"M-{unique}"
    assert event.refund_total.amount_minor == sum(refunds.values())

    # The last unit refunds the rest, so the refunds add up to the line total exactly.
    last = await world.order.ReceiveReturn(
        svc.ReceiveReturnRequest(
            request_id=f"r2-{unique}",
            order_id=order_id,
            receiving_location_id=back_at,
            by_post=True,
            lines=[
                pb.ReturnLineRequest(
                    line_id="L1", quantity=1, condition=pb.RETURN_CONDITION_RESALEABLE
                )
            ],
        ),
        timeout=10,
    )
    assert refunds["L1"] + last.order_return.lines[0].refund.amount_minor == 9899
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await world.order.ReceiveReturn(
            svc.ReceiveReturnRequest(
                request_id=f"r3-{unique}",
                order_id=order_id,
                receiving_location_id=back_at,
                lines=[
                    pb.ReturnLineRequest(
                        line_id="L1", quantity=1, condition=pb.RETURN_CONDITION_RESALEABLE
                    )
                ],
            ),
            timeout=10,
        )
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len((await world.get(order_id)).returns) == 2


async def test_unfillable_order_waits_and_is_routed_when_stock_arrives(
    world: World, unique: str
) -> None:
    ch = f"wait-{unique}"
    sku = await world.sku(f"RARE-{unique}-1")
    wh = await world.location(f"RW-{unique}", ch)
    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 2)], delivery_address=address()
    )
    assert got.order.status == pb.ORDER_STATUS_UNFILLABLE
    assert "no eligible location has stock" in got.routing.failure_reason
    await world.topic.wait_for(got.order.order_id, "OrderUnfillableEvent")

    # Stock arrives: inventory's StockChangedEvent wakes the order, which is routed again.
    await world.stock(wh, sku, 2)

    async def allocated() -> None:
        order = (await world.get(got.order.order_id)).order
        assert order.status == pb.ORDER_STATUS_ALLOCATED

    await eventually(allocated, timeout=30)
    assert await world.levels(wh, sku) == (2, 2)
    detail = await world.get(got.order.order_id)
    assert detail.routing.attempt == 2 and detail.routing.routed


async def test_payment_allocates_a_reserved_order(world: World, unique: str) -> None:
    ch = f"pay-{unique}"
    sku = await world.sku(f"PAY-{unique}-1")
    wh = await world.location(f"PW-{unique}", ch)
    await world.stock(wh, sku, 3)
    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        member_id="",
        guest_contact="guest@example.com",
        payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
        lines=[line(sku, 1)],
        delivery_address=address(),
    )
    assert got.order.status == pb.ORDER_STATUS_RESERVED
    assert list(got.order.fulfilments) == []  # not allocated before payment
    pay = svc.PayOrderRequest(
        request_id=f"pay-{unique}",
        order_id=got.order.order_id,
        payment_state=pb.PAYMENT_STATE_PAID_ONLINE,
    )
    paid = await world.order.PayOrder(pay, timeout=30)
    assert paid.order.status == pb.ORDER_STATUS_ALLOCATED
    assert paid.order.payment_state == pb.PAYMENT_STATE_PAID_ONLINE
    assert [f.location_id for f in paid.order.fulfilments] == [wh]
    again = await world.order.PayOrder(pay, timeout=30)  # a retry changes nothing
    assert again.order.status == pb.ORDER_STATUS_ALLOCATED
    assert await world.levels(wh, sku) == (3, 1)
    await world.topic.wait_for(got.order.order_id, "OrderPaidEvent")
    await world.topic.wait_for(got.order.order_id, "OrderAllocatedEvent")
    with pytest.raises(grpc.aio.AioRpcError) as unpaid:
        await world.order.PayOrder(
            svc.PayOrderRequest(
                request_id=f"pay2-{unique}",
                order_id=got.order.order_id,
                payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
            ),
            timeout=10,
        )
    assert unpaid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cancelling_a_pickup_order_calls_off_its_transfer(world: World, unique: str) -> None:
    """Compensation covers transfers: the requested transfer to the pickup store is
    cancelled at inventory and the source's stock is as it was before the order."""
    ch = f"xcan-{unique}"
    sku = await world.sku(f"XCN-{unique}-42")
    store = await world.location(f"XPS-{unique}", ch)
    source = await world.location(f"XSR-{unique}", ch, at=(31.3, 121.5))
    await world.stock(source, sku, 3)
    before = await world.level(source, sku)

    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_PICKUP,
        pickup_store_id=store,
        lines=[line(sku, 2)],
    )
    order_id = got.order.order_id
    (fo,) = (await world.get(order_id)).fulfilment_orders
    assert fo.transfer_id
    transfer = await world.inventory.GetTransfer(
        inv.GetTransferRequest(transfer_id=fo.transfer_id), timeout=10
    )
    assert transfer.transfer.status == res.TRANSFER_STATUS_REQUESTED
    assert await world.levels(source, sku) == (3, 2)

    cancelled = await world.order.CancelOrder(
        svc.CancelOrderRequest(request_id=f"x-{unique}", order_id=order_id), timeout=30
    )
    assert cancelled.order.status == pb.ORDER_STATUS_CANCELLED
    transfer = await world.inventory.GetTransfer(
        inv.GetTransferRequest(transfer_id=fo.transfer_id), timeout=10
    )
    assert transfer.transfer.status == res.TRANSFER_STATUS_CANCELLED
    after = await world.level(source, sku)
    assert (after.on_hand, after.reserved, after.available) == (
        before.on_hand,
        before.reserved,
        before.available,
    )
    assert (await world.level(store, sku)).in_transit == 0
    detail = await world.get(order_id)
    assert any(f"transfer {fo.transfer_id} cancelled" in h.note for h in detail.history)
    assert [f.status for f in detail.fulfilment_orders] == [pb.FULFILMENT_STATUS_CANCELLED]
    await world.topic.wait_for(order_id, "OrderCancelledEvent")

    # Once the transfer shipped, the order can no longer be cancelled (goods have left).
    shipped = await world.capture(
        f"c2-{unique}",
        channel_id=ch,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_PICKUP,
        pickup_store_id=store,
        lines=[line(sku, 1)],
    )
    (fo2,) = (await world.get(shipped.order.order_id)).fulfilment_orders
    await world.step("ShipFulfilment", fo2.fulfilment_id, f"s-{unique}")
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await world.order.CancelOrder(
            svc.CancelOrderRequest(request_id=f"x2-{unique}", order_id=shipped.order.order_id),
            timeout=10,
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    moving = await world.inventory.GetTransfer(
        inv.GetTransferRequest(transfer_id=fo2.transfer_id), timeout=10
    )
    assert moving.transfer.status == res.TRANSFER_STATUS_IN_TRANSIT


async def test_inventory_refusing_the_routing_query_parks_the_order_with_the_reason(
    world: World, unique: str
) -> None:
    """Catalog knew the SKU at capture, inventory has not registered it yet: inventory
    refuses the availability query (INVALID_ARGUMENT). The order waits as unfillable with
    inventory's reason in its routing explanation — not INTERNAL, not retried in a loop —
    and is routed once the SKU has stock."""
    ch = f"ghost-{unique}"
    sku = f"GHOST-{unique}-1"
    wh = await world.location(f"GW-{unique}", ch)
    order = NewOrder(
        channel_id=ch,
        channel_kind=str(pb.CHANNEL_KIND_OWN_ONLINE),
        channel_order_id=f"c-{unique}",
        member_id="M-1",
        guest_contact="",
        mode=Mode.EXPRESS_DELIVERY,
        aisle_handover=AisleHandover.NONE,
        selling_store_id="",
        selling_guide_staff_id="",
        referring_guide_code="",
        pickup_store_id="",
        address=Address(city="Shanghai", latitude=31.2304, longitude=121.4737),
        lines=(NewLine(sku, 1, 1000, 0, "CNY"),),
        payment=Payment.PAID_ONLINE,
        stock_channel=ch,
    )
    # As the capture's use case writes it once catalog confirmed the SKU.
    order_id = await insert_captured(world.order_pg, order, {sku: "TOPS"})

    async def parked() -> svc.GetOrderResponse:
        got = await world.get(order_id)
        assert got.order.status == pb.ORDER_STATUS_UNFILLABLE
        return got

    got = await eventually(parked, timeout=20)
    assert "inventory refused the availability query (INVALID_ARGUMENT)" in (
        got.routing.failure_reason
    )
    assert sku in got.routing.failure_reason
    unfillable = await world.topic.wait_for(order_id, "OrderUnfillableEvent")
    assert "INVALID_ARGUMENT" in unfillable.reason

    # Catalog's event reaches inventory, stock arrives: the order is routed.
    await world.sku(sku)
    await world.stock(wh, sku, 1)

    async def allocated() -> None:
        assert (await world.get(order_id)).order.status == pb.ORDER_STATUS_ALLOCATED

    await eventually(allocated, timeout=30)
    assert await world.levels(wh, sku) == (1, 1)
