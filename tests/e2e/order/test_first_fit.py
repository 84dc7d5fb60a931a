"""The fast path of capture: an order one location can serve whole is held there in one
call to inventory (the first of the ranked locations able to take every line), and, paid,
allocated in the same save — with the same routing explanation, events and stock as the
full routing gives."""

from __future__ import annotations

import asyncio

from omni.order.v1 import order_pb2 as pb

from tests.e2e.order.conftest import World, address, line

PAID_AND_ALLOCATED = [
    "OrderCreatedEvent",
    "OrderReservedEvent",
    "OrderPaidEvent",
    "OrderAllocatedEvent",
]
NEAR = (31.235, 121.48)
FAR = (31.40, 121.70)


async def test_the_order_is_held_whole_at_the_first_ranked_location_with_everything(
    world: World, unique: str
) -> None:
    ch = f"ff-{unique}"
    sku = await world.sku(f"FF-{unique}-1")
    near = await world.location(f"FFN-{unique}", ch, at=NEAR)
    far = await world.location(f"FFF-{unique}", ch, at=FAR)
    await world.stock(near, sku, 1)
    await world.stock(far, sku, 5)

    got = await world.capture(
        f"c-{unique}", channel_id=ch, lines=[line(sku, 2)], delivery_address=address()
    )
    assert got.order.status == pb.ORDER_STATUS_ALLOCATED
    assert [f.location_id for f in got.order.fulfilments] == [far]
    verdicts = {c.location_id: c for c in got.routing.candidates}
    assert verdicts[far].chosen and "one location serves the whole order" in verdicts[far].reason
    assert not verdicts[near].chosen and "1" in verdicts[near].reason, verdicts[near].reason
    assert got.routing.attempt == 1 and got.routing.routed
    assert await world.levels(near, sku) == (1, 0)
    assert await world.levels(far, sku) == (5, 2)

    detail = await world.get(got.order.order_id)
    notes = [h.note for h in detail.history]
    assert notes[:2] == ["captured", "holding at the first of 2 ranked location(s)"]
    assert [(h.from_status, h.to_status) for h in detail.history][-2:] == [
        (pb.ORDER_STATUS_RESERVING, pb.ORDER_STATUS_PAID),
        (pb.ORDER_STATUS_PAID, pb.ORDER_STATUS_ALLOCATED),
    ]
    await world.topic.wait_names(got.order.order_id, PAID_AND_ALLOCATED)


async def test_concurrent_captures_on_scarce_stock_are_held_whole_or_not_at_all(
    world: World, unique: str
) -> None:
    """Twelve two-line orders race for stock that serves five: each is held whole at one
    location or waits as unfillable; nothing is oversold and reserved is what they hold."""
    ch = f"ffr-{unique}"
    a = await world.sku(f"FRA-{unique}-1")
    b = await world.sku(f"FRB-{unique}-1")
    near = await world.location(f"FRN-{unique}", ch, at=NEAR)
    far = await world.location(f"FRF-{unique}", ch, at=FAR)
    for location, units in ((near, 3), (far, 2)):
        await world.stock(location, a, units)
        await world.stock(location, b, units)

    results = await asyncio.gather(
        *(
            world.capture(
                f"r{i}-{unique}",
                channel_id=ch,
                lines=[line(a, 1), line(b, 1)],
                delivery_address=address(),
            )
            for i in range(12)
        )
    )
    statuses = [r.order.status for r in results]
    assert statuses.count(pb.ORDER_STATUS_ALLOCATED) == 5, statuses
    assert statuses.count(pb.ORDER_STATUS_UNFILLABLE) == 7, statuses
    held: dict[str, int] = {}
    for r in results:
        for f in r.order.fulfilments:
            assert sorted(f.line_ids) == ["L1", "L2"]  # whole, never split
            held[f.location_id] = held.get(f.location_id, 0) + 1
    assert held == {near: 3, far: 2}
    for location, units in ((near, 3), (far, 2)):
        assert await world.levels(location, a) == (units, units)
        assert await world.levels(location, b) == (units, units)


async def test_a_location_added_after_the_ranking_was_cached_is_ranked_at_once(
    world: World, unique: str
) -> None:
    """The order service keeps the channel's locations in memory; a location created since
    makes inventory refuse the cached ranking as stale, so the next order already sees it."""
    ch = f"ffv-{unique}"
    sku = await world.sku(f"FFV-{unique}-1")
    far = await world.location(f"FVF-{unique}", ch, at=FAR)
    await world.stock(far, sku, 5)
    first = await world.capture(
        f"c1-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
    )
    assert [f.location_id for f in first.order.fulfilments] == [far]

    near = await world.location(f"FVN-{unique}", ch, at=NEAR)
    await world.stock(near, sku, 5)
    second = await world.capture(
        f"c2-{unique}", channel_id=ch, lines=[line(sku, 1)], delivery_address=address()
    )
    assert [f.location_id for f in second.order.fulfilments] == [near]
    assert {c.location_id for c in second.routing.candidates} >= {near, far}
