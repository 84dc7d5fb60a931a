"""The order service's metrics for SRE dashboards, read from the running service's registry
(it runs in this process): orders finished by channel kind, mode and outcome once the final
state is committed, and the size of the unfillable queue."""

from __future__ import annotations

import sqlalchemy as sa
from omni.order.v1 import order_pb2 as pb
from omni.order.v1 import order_service_pb2 as svc
from prometheus_client import REGISTRY

from libs.testing.services import eventually
from tests.e2e.order.conftest import World, address, line

FINISHED = "omni_order_orders_finished_total"


def finished(channel_kind: str, mode: str, outcome: str) -> float:
    labels = {"channel_kind": channel_kind, "mode": mode, "outcome": outcome}
    return REGISTRY.get_sample_value(FINISHED, labels) or 0.0


async def test_finished_orders_are_counted_by_kind_mode_and_outcome(
    world: World, unique: str
) -> None:
    ch = f"met-{unique}"
    sku = await world.sku(f"MET-{unique}-1")
    store = await world.location(f"MT-{unique}", ch)
    await world.stock(store, sku, 5)

    sales = finished("store", "store_sale", "completed")
    await world.capture(
        f"s-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_STORE,
        fulfilment_mode=pb.FULFILMENT_MODE_STORE_SALE,
        selling_store_id=store,
        payment_state=pb.PAYMENT_STATE_PAID_AT_POS,
        lines=[line(sku, 1)],
    )
    assert finished("store", "store_sale", "completed") == sales + 1

    cancels = finished("marketplace", "express_delivery", "cancelled")
    completed = finished("marketplace", "express_delivery", "completed")
    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        channel_kind=pb.CHANNEL_KIND_MARKETPLACE,
        payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
        lines=[line(sku, 1)],
        delivery_address=address(),
    )
    assert finished("marketplace", "express_delivery", "cancelled") == cancels
    request = svc.CancelOrderRequest(
        request_id=f"x-{unique}", order_id=got.order.order_id, reason="changed my mind"
    )
    await world.order.CancelOrder(request, timeout=30)
    await world.order.CancelOrder(request, timeout=30)  # a retry is not a second end
    assert finished("marketplace", "express_delivery", "cancelled") == cancels + 1
    assert finished("marketplace", "express_delivery", "completed") == completed
    # A typed reason does not become a label value of its own.
    assert (
        REGISTRY.get_sample_value("omni_order_cancellations_total", {"reason": "changed my mind"})
        is None
    )


async def test_the_unfillable_gauge_follows_the_queue(world: World, unique: str) -> None:
    ch = f"gauge-{unique}"
    sku = await world.sku(f"GAU-{unique}-1")
    wh = await world.location(f"GA-{unique}", ch)
    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
    )
    assert got.order.status == pb.ORDER_STATUS_UNFILLABLE

    async def in_queue() -> int:
        async with world.order_uow() as uow:
            return int(
                (
                    await uow.session.execute(
                        sa.text("SELECT count(*) FROM orders WHERE status = 'unfillable'")
                    )
                ).scalar_one()
            )

    async def matches(expected_at_least: int) -> None:
        value = REGISTRY.get_sample_value("omni_order_unfillable_orders")
        count = await in_queue()
        assert count >= expected_at_least
        assert value == count, (value, count)

    await eventually(lambda: matches(1), timeout=20)

    await world.stock(wh, sku, 1)  # the order is routed: it leaves the queue

    async def left() -> None:
        assert (await world.get(got.order.order_id)).order.status == pb.ORDER_STATUS_ALLOCATED
        await matches(0)

    await eventually(left, timeout=30)
