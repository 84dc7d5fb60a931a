"""A hold that inventory expires on its own (ReservationExpiredEvent on inventory's topic)
cancels the unpaid order it belonged to and releases the order's other holds."""

from __future__ import annotations

from pathlib import Path

from omni.inventory.v1 import events_pb2 as inv_events
from omni.inventory.v1 import inventory_pb2 as res
from omni.order.v1 import order_pb2 as pb

from libs.config import Settings
from libs.db import Database, drop_database, ensure_database, migrate
from libs.messaging import make_producer, start_with_retry
from libs.outbox_relay import OutboxRelay
from libs.testing.services import eventually
from libs.unit_of_work import UnitOfWorkFactory
from tests.e2e.order.conftest import HZ, World, address, line

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "order" / "migrations"


async def publish_as_inventory(
    test_stack, event: inv_events.ReservationExpiredEvent, key: str
) -> None:
    """Write the event to an outbox whose topic is inventory's, in a scratch database, and
    let a real relay publish it (inventory's own sweeper would only do so after 7 days)."""
    scratch: Settings = test_stack.settings("inventory").with_overrides(
        database_prefix=f"omni_t{test_stack.run_id}x_"
    )
    url = scratch.database_url()
    await ensure_database(url)
    await migrate(url, MIGRATIONS)
    db = Database(url, pool_size=1, max_overflow=0)
    producer = make_producer(test_stack.kafka_bootstrap)
    await start_with_retry(producer)
    relay = OutboxRelay(db, producer, "inventory")
    try:
        uow_factory = UnitOfWorkFactory(db, "inventory", scratch.topic("inventory"))
        async with uow_factory() as uow:
            uow.emit(event, key)
            await uow.commit()

        async def published() -> None:
            assert await relay.run_once() > 0

        await eventually(published, timeout=10)
    finally:
        await producer.stop()
        await db.dispose()
        await drop_database(url)


async def test_hold_expired_at_inventory_cancels_the_unpaid_order(
    world: World, test_stack, unique: str
) -> None:
    ch = f"exp-{unique}"
    a = await world.sku(f"EXA-{unique}-1")
    b = await world.sku(f"EXB-{unique}-1")
    wa = await world.location(f"XA-{unique}", ch)
    wb = await world.location(f"XB-{unique}", ch, city="Hangzhou", at=HZ)
    await world.stock(wa, a, 2)
    await world.stock(wb, b, 2)
    got = await world.capture(
        f"c-{unique}",
        channel_id=ch,
        payment_state=pb.PAYMENT_STATE_AWAITING_PAYMENT,
        lines=[line(a, 1), line(b, 1)],
        delivery_address=address(),
    )
    order_id = got.order.order_id
    assert got.order.status == pb.ORDER_STATUS_RESERVED
    assert await world.levels(wb, b) == (2, 1)

    # The first leg's hold (key <order>.<attempt>.<leg>) expires at inventory.
    expired = inv_events.ReservationExpiredEvent(
        reservation=res.Reservation(order_id=f"{order_id}.1.1", channel=ch)
    )
    await publish_as_inventory(test_stack, expired, f"{order_id}.1.1")

    async def cancelled() -> None:
        order = (await world.get(order_id)).order
        assert order.status == pb.ORDER_STATUS_CANCELLED, order.status

    await eventually(cancelled, timeout=30)
    assert (await world.get(order_id)).order.cancel_reason == "hold_expired"
    assert await world.levels(wa, a) == (2, 0)
    assert await world.levels(wb, b) == (2, 0)
    await world.topic.wait_for(order_id, "OrderCancelledEvent")
