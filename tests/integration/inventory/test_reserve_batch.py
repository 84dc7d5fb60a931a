"""The batched reservation path on real PostgreSQL: concurrent holds applied together, each
whole or not at all; first fit over ranked candidates with the reasons for skipping; hold
and confirm in one step; replays and ALREADY_EXISTS per hold; a bad hold refused alone;
one StockChangedEvent per level and batch; faults isolated to the hold that caused them."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc
import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv

from libs.errors import Unavailable
from libs.grpc_errors import field_violations
from services.inventory.domain.holds import Hold
from services.inventory.domain.reservations import ReservationLine
from services.inventory.domain.stock import InsufficientStock
from services.inventory.service_layer.reservation_engine import HoldOutcome, ReservationEngine

OK = inv.HOLD_CODE_OK
SHORT = inv.HOLD_CODE_FAILED_PRECONDITION
INVALID = inv.HOLD_CODE_INVALID_ARGUMENT


def line(line_id, sku, quantity, location_id=""):
    return res.ReservationLine(
        line_id=line_id, sku_code=sku, location_id=location_id, quantity=quantity
    )


async def reserve_batch(inventory, *holds: inv.HoldRequest) -> list[inv.HoldResult]:
    got = await inventory.stub.ReserveBatch(inv.ReserveBatchRequest(holds=holds), timeout=30)
    assert [r.order_id for r in got.results] == [h.order_id for h in holds]
    return list(got.results)


async def held_units(inventory, sku: str, location_id: str) -> int:
    """Units of active reservations' lines at a level."""
    return await inventory.scalar(
        "SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l "
        "JOIN reservations r ON r.order_id = l.order_id "
        "WHERE r.status = 'active' AND l.sku_code = :s AND l.location_id = :l",
        s=sku,
        l=location_id,
    )


async def test_concurrent_holds_mixing_fits_and_misfits_are_each_whole_or_not_at_all(
    inventory, unique
):
    """60 orders of one or two SKUs at once (some too big to fit ever), from the engine in
    one batch and over the wire from Reserve and ReserveBatch: every order is held in full
    or leaves nothing, and the units held are exactly what the levels say is reserved."""
    a = await inventory.track(f"MIX-{unique}-A")
    b = await inventory.track(f"MIX-{unique}-B")
    store = (await inventory.location(f"MIX-{unique}", safety=1)).location_id
    await inventory.receive(store, a, 21, f"{unique}-a")  # 20 promisable
    await inventory.receive(store, b, 9, f"{unique}-b")  # 8 promisable
    rng = random.Random(unique)
    wanted: dict[str, list[tuple[str, int]]] = {}
    for n in range(60):
        lines = [(a, rng.randint(1, 3))]
        if rng.random() < 0.5:
            lines.append((b, rng.choice([1, 2, 9])))  # 9 B never fits
        wanted[f"O-{unique}-{n}"] = lines

    def domain_lines(order_id):
        return tuple(
            ReservationLine(str(i), sku, store, qty)
            for i, (sku, qty) in enumerate(wanted[order_id])
        )

    engine = ReservationEngine(inventory.pg)
    orders = list(wanted)
    direct, wire_single, wire_batch = orders[:30], orders[30:40], orders[40:]

    async def by_reserve(order_id):
        try:
            await inventory.stub.Reserve(
                inv.ReserveRequest(
                    request_id=f"r-{order_id}",
                    order_id=order_id,
                    channel="mall",
                    lines=[line(str(i), s, q, store) for i, (s, q) in enumerate(wanted[order_id])],
                ),
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            return False
        return True

    async def by_batch(order_ids):
        results = await reserve_batch(
            inventory,
            *(
                inv.HoldRequest(
                    order_id=o,
                    channel="mall",
                    lines=[line(str(i), s, q, store) for i, (s, q) in enumerate(wanted[o])],
                )
                for o in order_ids
            ),
        )
        assert {r.code for r in results} <= {OK, SHORT}
        return [r.code == OK for r in results]

    outcomes = await asyncio.gather(
        *(engine.hold(Hold(o, "mall", domain_lines(o))) for o in direct),
        *(by_reserve(o) for o in wire_single),
        by_batch(wire_batch),
    )
    for out in outcomes[:30]:
        assert out.reservation is not None or isinstance(out.error, InsufficientStock)
    held = {o for o, out in zip(direct, outcomes[:30], strict=True) if out.reservation}
    held |= {o for o, ok in zip(wire_single, outcomes[30:40], strict=True) if ok}
    held |= {o for o, ok in zip(wire_batch, outcomes[40], strict=True) if ok}
    # The 30 holds given to the engine at once went in one transaction.
    assert engine.holds_applied == 30 and engine.batches == 1

    assert held and len(held) < len(orders)  # stock ran out for some
    for order_id, lines in wanted.items():
        rows = await inventory.scalar(
            "SELECT count(*) FROM reservation_lines WHERE order_id = :o", o=order_id
        )
        headers = await inventory.scalar(
            "SELECT count(*) FROM reservations WHERE order_id = :o", o=order_id
        )
        if order_id in held:
            assert (headers, rows) == (1, len(lines))
        else:
            assert (headers, rows) == (0, 0)  # a refusal leaves nothing behind
    for sku, promisable in ((a, 20), (b, 8)):
        level = await inventory.level(store, sku)
        expected = sum(q for o in held for s, q in wanted[o] if s == sku)
        assert level.reserved == expected == await held_units(inventory, sku, store)
        assert level.reserved <= promisable
    # 9 B never fits, and what did not fit was refused only for want of stock.
    assert not any(q == 9 for o in held for s, q in wanted[o] if s == b)


async def test_first_fit_skips_closed_foreign_incapable_and_short_candidates(inventory, unique):
    sku = await inventory.track(f"FF-{unique}")
    # Open only tomorrow (Asia/Shanghai) at noon: closed now, even if the day turns meanwhile.
    tomorrow = datetime.now(ZoneInfo("Asia/Shanghai")).isoweekday() % 7 + 1
    closed = await inventory.location(
        f"FF-{unique}-CLOSED",
        opening_hours=[res.OpeningHours(day_of_week=tomorrow, open_minute=720, close_minute=721)],
    )
    foreign = await inventory.location(f"FF-{unique}-TMALL", channels=("tmall",))
    incapable = await inventory.location(
        f"FF-{unique}-NOPICK", capabilities=[res.CAPABILITY_EXPRESS_SHIPPING]
    )
    short = await inventory.location(f"FF-{unique}-SHORT")
    good = await inventory.location(f"FF-{unique}-GOOD")
    later = await inventory.location(f"FF-{unique}-LATER")
    for loc in (closed, foreign, incapable, good, later):
        await inventory.receive(loc.location_id, sku, 10, f"{unique}-{loc.location_id}")
    await inventory.receive(short.location_id, sku, 2, f"{unique}-short")
    ranked = [loc.location_id for loc in (closed, foreign, incapable, short, good, later)]

    def ask(order_id, quantity):
        return inv.HoldRequest(
            order_id=order_id,
            channel="mall",
            lines=[line("1", sku, quantity)],
            candidate_location_ids=ranked,
            required_capability=res.CAPABILITY_PICKUP,
            require_open_now=True,
        )

    first, too_big = await reserve_batch(
        inventory, ask(f"O-{unique}-1", 3), ask(f"O-{unique}-2", 11)
    )
    assert first.code == OK
    assert [x.location_id for x in first.reservation.lines] == [good.location_id]
    reasons = {s.location_id: s.reason for s in first.skipped}
    assert list(reasons) == ranked[:4]
    assert reasons[closed.location_id] == "closed now"
    assert reasons[foreign.location_id] == "does not serve channel mall"
    assert reasons[incapable.location_id] == "lacks capability pickup"
    assert reasons[short.location_id] == f"only 2 of {sku} available, 3 needed"
    assert too_big.code == SHORT and too_big.reason == "NO_LOCATION_CAN_HOLD"
    assert [s.location_id for s in too_big.skipped] == ranked
    assert (await inventory.level(good.location_id, sku)).reserved == 3
    for loc in (closed, foreign, incapable, short, later):
        assert (await inventory.level(loc.location_id, sku)).reserved == 0


async def test_hold_and_confirm_in_one_step_writes_sales_and_keeps_the_ledger(inventory, unique):
    a = await inventory.track(f"CF-{unique}-A")
    b = await inventory.track(f"CF-{unique}-B")
    store = (await inventory.location(f"CF-{unique}", safety=0)).location_id
    await inventory.receive(store, a, 10, f"{unique}-a")
    await inventory.receive(store, b, 4, f"{unique}-b")
    order = f"O-{unique}"
    sale = inv.HoldRequest(
        order_id=order,
        channel="mall",
        lines=[line("1", a, 2, store), line("2", a, 1, store), line("3", b, 4, store)],
        confirm=True,
    )
    (sold,) = await reserve_batch(inventory, sale)
    assert sold.code == OK
    assert sold.reservation.status == res.RESERVATION_STATUS_CONFIRMED
    await inventory.assert_ledger(store, a, 7)
    await inventory.assert_ledger(store, b, 0)
    for sku, on_hand in ((a, 7), (b, 0)):
        level = await inventory.level(store, sku)
        assert (level.on_hand, level.reserved) == (on_hand, 0)
    movements = await inventory.stub.ListMovements(
        inv.ListMovementsRequest(location_id=store, sku_code=a)
    )
    assert [(m.kind, m.quantity, m.on_hand_after, m.reference) for m in movements.movements] == [
        (res.MOVEMENT_KIND_RECEIPT, 10, 10, ""),
        (res.MOVEMENT_KIND_SALE, -3, 7, order),
    ]
    # The same sale again is a replay: no second movement; a confirm after it is a no-op.
    (again,) = await reserve_batch(inventory, sale)
    assert again.code == OK and again.reservation == sold.reservation
    await inventory.stub.ConfirmReservation(
        inv.ConfirmReservationRequest(request_id=f"{unique}-c", order_id=order)
    )
    await inventory.assert_ledger(store, a, 7)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await inventory.stub.ReleaseReservation(
            inv.ReleaseReservationRequest(request_id=f"{unique}-r", order_id=order)
        )
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # A sale that does not fit sells nothing.
    (refused,) = await reserve_batch(
        inventory,
        inv.HoldRequest(
            order_id=f"{order}-2",
            lines=[line("1", a, 1, store), line("2", b, 1, store)],
            confirm=True,
        ),
    )
    assert refused.code == SHORT and refused.reason == "INSUFFICIENT_STOCK"
    await inventory.assert_ledger(store, a, 7)


async def test_replays_and_other_lines_under_the_same_order_are_answered_per_hold(
    inventory, unique
):
    sku = await inventory.track(f"RP-{unique}")
    store = (await inventory.location(f"RP-{unique}", safety=0)).location_id
    other = (await inventory.location(f"RP-{unique}-2", safety=0)).location_id
    await inventory.receive(store, sku, 10, f"{unique}-in")
    order = f"O-{unique}"
    routed = inv.HoldRequest(
        order_id=order,
        channel="mall",
        lines=[line("1", sku, 4)],
        candidate_location_ids=[other, store],
    )
    bigger = inv.HoldRequest(
        order_id=order, channel="mall", lines=[line("1", sku, 5)], candidate_location_ids=[store]
    )
    # The same order three times in one call: held once, then replayed, then refused.
    first, replay, conflict = await reserve_batch(inventory, routed, routed, bigger)
    assert first.code == OK and replay.code == OK
    assert replay.reservation == first.reservation
    assert conflict.code == inv.HOLD_CODE_ALREADY_EXISTS
    assert (await inventory.level(store, sku)).reserved == 4
    # Named at the location it went to, it is the same hold; through Reserve too.
    (named,) = await reserve_batch(
        inventory, inv.HoldRequest(order_id=order, channel="mall", lines=[line("1", sku, 4, store)])
    )
    assert named.code == OK and named.reservation == first.reservation
    again = await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=f"{unique}-r",
            order_id=order,
            channel="mall",
            lines=[line("1", sku, 4, store)],
        )
    )
    assert again.reservation == first.reservation
    assert (await inventory.level(store, sku)).reserved == 4
    # A request id used for another request is refused, naming it.
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await inventory.stub.Reserve(
            inv.ReserveRequest(
                request_id=f"{unique}-r",
                order_id=f"{order}-other",
                channel="mall",
                lines=[line("1", sku, 1, store)],
            )
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(reused.value)] == ["request_id"]


async def test_a_bad_hold_is_refused_alone_and_a_refused_one_can_be_held_later(inventory, unique):
    sku = await inventory.track(f"BAD-{unique}")
    store = (await inventory.location(f"BAD-{unique}", safety=0)).location_id
    await inventory.receive(store, sku, 3, f"{unique}-in")

    def ask(n, *lines, **extra):
        return inv.HoldRequest(order_id=f"O-{unique}-{n}", channel="mall", lines=lines, **extra)

    results = await reserve_batch(
        inventory,
        ask(1, line("1", sku, 1, store)),
        ask(2, line("1", sku, 0, store)),
        ask(3, line("1", f"NOPE-{unique}", 1, store)),
        ask(4, line("1", sku, 1), candidate_location_ids=[store, f"NOPE-{unique}"]),
        ask(5, line("1", sku, 1, store), required_capability=99),
        ask(6, line("1", sku, 5, store)),
        ask(7, line("1", sku, 2, store)),
    )
    assert [r.code for r in results] == [OK, INVALID, INVALID, INVALID, INVALID, SHORT, OK]
    assert [[v.field for v in r.field_violations] for r in results[1:5]] == [
        ["lines[0].quantity"],
        ["lines[0].sku_code"],
        ["candidate_location_ids[1]"],
        ["required_capability"],
    ]
    assert (await inventory.level(store, sku)).reserved == 3
    for n in range(2, 7):
        assert (
            await inventory.scalar(
                "SELECT count(*) FROM reservations WHERE order_id = :o", o=f"O-{unique}-{n}"
            )
            == 0
        )
    # The short order, sent again once stock arrived, is held.
    await inventory.receive(store, sku, 5, f"{unique}-more")
    (later,) = await reserve_batch(inventory, ask(6, line("1", sku, 5, store)))
    assert later.code == OK
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await inventory.stub.ReserveBatch(inv.ReserveBatchRequest(), timeout=10)
    assert [f for f, _ in field_violations(empty.value)] == ["holds"]


async def test_a_batch_announces_each_level_once_with_its_final_figures(inventory, unique):
    a = await inventory.track(f"EV-{unique}-A")
    b = await inventory.track(f"EV-{unique}-B")
    store = (
        await inventory.location(f"EV-{unique}", channels=("mall", "pos"), safety=1)
    ).location_id
    await inventory.receive(store, a, 30, f"{unique}-a")
    await inventory.receive(store, b, 30, f"{unique}-b")
    before = {sku: len(await inventory.stock_events(sku)) for sku in (a, b)}
    engine = ReservationEngine(inventory.pg)
    holds = [
        Hold(
            f"O-{unique}-{n}",
            "mall",
            (ReservationLine("1", a, store, 1), ReservationLine("2", b, store, 2)),
            confirm=n % 4 == 0,
        )
        for n in range(12)
    ]
    outcomes = await asyncio.gather(*(engine.hold(h) for h in holds))
    assert all(o.reservation is not None for o in outcomes)
    assert engine.batches == 1
    for sku, per_order in ((a, 1), (b, 2)):
        events = (await inventory.stock_events(sku))[before[sku] :]
        assert len(events) == 1  # twelve holds, one level, one batch: one event
        (event,) = events
        level = await inventory.level(store, sku)
        assert event.stock_level == level
        assert (level.on_hand, level.reserved) == (30 - 3 * per_order, 9 * per_order)
        assert event.cause == "sale" and list(event.channels) == ["mall", "pos"]


async def test_a_fault_in_one_holds_write_fails_it_alone(inventory, unique):
    """A ledger key already taken (here planted straight in the table) makes the batch's
    write fail; the engine splits the batch until that hold fails alone, and the others
    are applied exactly once."""
    sku = await inventory.track(f"ISO-{unique}")
    store = (await inventory.location(f"ISO-{unique}", safety=0)).location_id
    await inventory.receive(store, sku, 20, f"{unique}-in")
    poisoned = f"O-{unique}-3"
    async with inventory.pg.connection() as conn:
        await conn.execute(
            "INSERT INTO stock_movements (location_id, sku_code, kind, quantity, on_hand_after,"
            " idempotency_key) VALUES ('ELSEWHERE', 'ELSE', 'receipt', 0, 0, $1)",
            f"reservation:{poisoned}:{store}:{sku}",
        )
    engine = ReservationEngine(inventory.pg)
    holds = [
        Hold(f"O-{unique}-{n}", "mall", (ReservationLine("1", sku, store, 1),), confirm=True)
        for n in range(8)
    ]
    outcomes = await asyncio.gather(*(engine.hold(h) for h in holds), return_exceptions=True)
    failed = [h.order_id for h, o in zip(holds, outcomes, strict=True) if isinstance(o, Exception)]
    assert failed == [poisoned]
    await inventory.assert_ledger(store, sku, 13)
    assert (await inventory.level(store, sku)).reserved == 0
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM reservations WHERE order_id LIKE :o", o=f"O-{unique}-%"
        )
        == 7
    )
    # The others, sent again, are replays: nothing applied twice.
    again = await asyncio.gather(*(engine.hold(h) for h in holds if h.order_id != poisoned))
    assert all(o.repeated for o in again)
    await inventory.assert_ledger(store, sku, 13)


async def test_holds_confirms_and_releases_on_the_same_rows_never_deadlock(inventory, unique):
    """Engine batches lock rows in the same order as confirm, release and expiry: a storm of
    all of them over two SKUs ends with no error but running out of stock, and every figure
    exact."""
    a = await inventory.track(f"DL-{unique}-A")
    b = await inventory.track(f"DL-{unique}-B")
    store = (await inventory.location(f"DL-{unique}", safety=0)).location_id
    for sku in (a, b):
        await inventory.receive(store, sku, 40, f"{unique}-{sku}")
    first = [f"O-{unique}-first-{n}" for n in range(10)]
    for order_id in first:
        await inventory.stub.Reserve(
            inv.ReserveRequest(
                request_id=order_id,
                order_id=order_id,
                channel="mall",
                lines=[line("1", b, 1, store), line("2", a, 1, store)],
            )
        )

    async def hold(n):
        pair = [line("1", a, 1, store), line("2", b, 1, store)][:: 1 if n % 2 else -1]
        (result,) = await reserve_batch(
            inventory, inv.HoldRequest(order_id=f"O-{unique}-{n}", channel="mall", lines=pair)
        )
        return result.code

    async def end(n, order_id):
        if n % 2:
            await inventory.stub.ConfirmReservation(
                inv.ConfirmReservationRequest(request_id=f"c-{order_id}", order_id=order_id)
            )
        else:
            await inventory.stub.ReleaseReservation(
                inv.ReleaseReservationRequest(request_id=f"r-{order_id}", order_id=order_id)
            )
        return OK

    codes = await asyncio.gather(
        *(hold(n) for n in range(40)), *(end(n, o) for n, o in enumerate(first))
    )
    assert set(codes) <= {OK, SHORT}
    for sku in (a, b):
        level = await inventory.level(store, sku)
        # 5 of the first ten were confirmed (sold), 5 released; the rest is held or free.
        assert level.on_hand == 35
        await inventory.assert_ledger(store, sku, 35)
        assert level.reserved == await held_units(inventory, sku, store) <= 35


async def test_a_saturated_engine_turns_holds_away_at_once_and_loses_none(inventory, unique):
    sku = await inventory.track(f"BP-{unique}")
    store = (await inventory.location(f"BP-{unique}", safety=0)).location_id
    await inventory.receive(store, sku, 100, f"{unique}-in")
    engine = ReservationEngine(inventory.pg, max_queued=4)
    holds = [
        Hold(f"O-{unique}-{n}", "mall", (ReservationLine("1", sku, store, 1),)) for n in range(20)
    ]
    outcomes = await asyncio.gather(*(engine.hold(h) for h in holds), return_exceptions=True)
    # Queued while the first batch had not started: four held, sixteen told to retry.
    first = outcomes[:4]
    assert all(isinstance(o, HoldOutcome) and o.reservation is not None for o in first)
    assert all(isinstance(o, Unavailable) for o in outcomes[4:])
    assert (await inventory.level(store, sku)).reserved == 4
    # Their retries, paced, are all held.
    for hold in holds[4:]:
        assert (await engine.hold(hold)).reservation is not None
    assert (await inventory.level(store, sku)).reserved == 20


async def test_a_ranking_made_before_the_locations_changed_is_refused_as_stale(inventory, unique):
    """A caller ranking cached locations sends the version it ranked at: after any location
    changed, the hold is refused as stale and holds nothing; at the current version it is
    held. Every change of a location moves the version ListLocations reports."""
    sku = await inventory.track(f"VER-{unique}")
    store = await inventory.location(f"VER-{unique}-A")
    await inventory.receive(store.location_id, sku, 5, f"{unique}-ver")

    async def version() -> int:
        got = await inventory.stub.ListLocations(inv.ListLocationsRequest(), timeout=10)
        return got.locations_version

    ranked_at = await version()
    await inventory.location(f"VER-{unique}-B")  # a new location: the ranking is out of date
    moved = await version()
    assert moved > ranked_at

    def ask(order_id, at_version):
        return inv.HoldRequest(
            order_id=order_id,
            channel="mall",
            lines=[line("1", sku, 1)],
            candidate_location_ids=[store.location_id],
            locations_version=at_version,
        )

    (stale,) = await reserve_batch(inventory, ask(f"O-{unique}-stale", ranked_at))
    assert stale.code == inv.HOLD_CODE_STALE_LOCATIONS and stale.reason == "STALE_LOCATIONS"
    assert (await inventory.level(store.location_id, sku)).reserved == 0
    (held,) = await reserve_batch(inventory, ask(f"O-{unique}-stale", moved))
    assert held.code == OK
    assert (await inventory.level(store.location_id, sku)).reserved == 1

    update = inv.UpdateLocationRequest(request_id=f"upd-{unique}", location=store)
    update.location.name = "renamed"
    await inventory.stub.UpdateLocation(update, timeout=10)
    assert await version() > moved
