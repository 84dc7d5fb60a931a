"""Deciding a batch of holds, without I/O: never oversell, each hold whole or nothing, first
fit over the ranked candidates, and a batch decides what the same holds one at a time
would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument
from services.inventory.domain.holds import (
    BatchPlan,
    Hold,
    Key,
    NoLocationCanHold,
    Skipped,
    decide_batch,
    same_hold,
    validate_hold,
)
from services.inventory.domain.locations import (
    Capability,
    Location,
    LocationType,
    OpeningHours,
    is_open,
)
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
)
from services.inventory.domain.stock import InsufficientStock, StockLevel

# Thursday noon UTC.
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MONDAY_ONLY = (OpeningHours(1, 540, 1260),)


def location(
    location_id: str,
    *,
    active: bool = True,
    channels: tuple[str, ...] = ("mall",),
    capabilities: frozenset[Capability] = frozenset(Capability),
    hours: tuple[OpeningHours, ...] = (),
) -> Location:
    return Location(
        location_id=location_id,
        name=location_id,
        type=LocationType.STORE,
        province="Shanghai",
        city="Shanghai",
        latitude=31.2,
        longitude=121.5,
        time_zone="UTC",
        opening_hours=hours,
        capabilities=capabilities,
        channels=channels,
        active=active,
    )


def line(line_id: str, sku: str, quantity: int, location_id: str = "") -> ReservationLine:
    return ReservationLine(line_id, sku, location_id, quantity)


def stock(*rows: tuple[str, str, int]) -> dict[Key, StockLevel]:
    return {(loc, sku): StockLevel(loc, sku, on_hand) for loc, sku, on_hand in rows}


# --- examples ------------------------------------------------------------------------------


def test_first_fit_skips_each_unfit_candidate_with_its_reason():
    locations = {
        "CLOSED": location("CLOSED", hours=MONDAY_ONLY),
        "TMALL": location("TMALL", channels=("tmall",)),
        "NOPICK": location("NOPICK", capabilities=frozenset({Capability.EXPRESS_SHIPPING})),
        "OFF": location("OFF", active=False),
        "SHORT": location("SHORT"),
        "GOOD": location("GOOD"),
        "LATER": location("LATER"),
    }
    levels = stock(
        *((loc, "A", 10) for loc in locations if loc != "SHORT"),
        ("SHORT", "A", 1),
        *((loc, "B", 10) for loc in locations),
    )
    hold = Hold(
        "O1",
        "mall",
        (line("1", "A", 2), line("2", "B", 1)),
        candidates=("CLOSED", "TMALL", "NOPICK", "OFF", "SHORT", "GOOD", "LATER"),
        capability=Capability.PICKUP,
        require_open_now=True,
    )
    plan = decide_batch([hold], levels, locations, {"A", "B"}, NOW)
    (decision,) = plan.decisions
    assert decision.held
    assert {held.location_id for held in decision.lines} == {"GOOD"}
    assert decision.skipped == (
        Skipped("CLOSED", "closed now"),
        Skipped("TMALL", "does not serve channel mall"),
        Skipped("NOPICK", "lacks capability pickup"),
        Skipped("OFF", "not active"),
        Skipped("SHORT", "only 1 of A available, 2 needed"),
    )
    assert plan.levels == {
        ("GOOD", "A"): StockLevel("GOOD", "A", 10, 2),
        ("GOOD", "B"): StockLevel("GOOD", "B", 10, 1),
    }


def test_a_hold_no_candidate_can_take_is_refused_with_every_reason():
    locations = {"X": location("X"), "Y": location("Y")}
    levels = stock(("X", "A", 5), ("Y", "B", 5))
    hold = Hold("O1", "mall", (line("1", "A", 1), line("2", "B", 1)), candidates=("X", "Y"))
    (decision,) = decide_batch([hold], levels, locations, {"A", "B"}, NOW).decisions
    assert isinstance(decision.error, NoLocationCanHold)
    assert decision.lines == ()
    assert decision.skipped == (
        Skipped("X", "only 0 of B available, 1 needed"),
        Skipped("Y", "only 0 of A available, 1 needed"),
    )


def test_a_named_hold_short_anywhere_holds_nothing_and_names_the_short_row():
    locations = {"L": location("L")}
    levels = stock(("L", "A", 5), ("L", "B", 1))
    hold = Hold("O1", "mall", (line("1", "A", 3, "L"), line("2", "B", 2, "L")))
    plan = decide_batch([hold], levels, locations, {"A", "B"}, NOW)
    (decision,) = plan.decisions
    assert isinstance(decision.error, InsufficientStock)
    assert decision.error.message == "not enough B at L: 1 available, 2 asked"
    assert plan.levels == {} and plan.reserved_delta == {}


def test_safety_stock_and_a_count_below_reserved_are_never_promised():
    locations = {"L": location("L")}
    levels = {("L", "A"): StockLevel("L", "A", on_hand=5, reserved=6, safety_stock=0)}
    levels[("L", "B")] = StockLevel("L", "B", on_hand=5, reserved=0, safety_stock=2)
    holds = [
        Hold("O1", "", (line("1", "A", 1, "L"),)),
        Hold("O2", "", (line("1", "B", 4, "L"),)),
        Hold("O3", "", (line("1", "B", 3, "L"),)),
    ]
    decisions = decide_batch(holds, levels, locations, {"A", "B"}, NOW).decisions
    assert [d.held for d in decisions] == [False, False, True]


def test_later_holds_in_a_batch_see_what_earlier_ones_took():
    locations = {"L": location("L"), "M": location("M")}
    levels = stock(("L", "A", 3), ("M", "A", 3))
    holds = [
        Hold("O1", "mall", (line("1", "A", 2),), candidates=("L", "M")),
        Hold("O2", "mall", (line("1", "A", 2),), candidates=("L", "M")),
        Hold("O3", "mall", (line("1", "A", 2),), candidates=("L", "M")),
        Hold("O4", "mall", (line("1", "A", 1),), candidates=("L", "M")),
    ]
    plan = decide_batch(holds, levels, locations, {"A"}, NOW)
    placed = [d.lines[0].location_id if d.held else None for d in plan.decisions]
    assert placed == ["L", "M", None, "L"]
    assert plan.reserved_delta == {("L", "A"): 3, ("M", "A"): 2}


def test_a_confirming_hold_leaves_as_sales_with_running_on_hand():
    locations = {"L": location("L")}
    levels = {("L", "A"): StockLevel("L", "A", on_hand=10, reserved=2)}
    holds = [
        Hold("O1", "mall", (line("1", "A", 3, "L"),), confirm=True),
        Hold("O2", "mall", (line("1", "A", 1, "L"),)),
        Hold("O3", "mall", (line("1", "A", 2, "L"), line("2", "A", 1, "L")), confirm=True),
    ]
    plan = decide_batch(holds, levels, locations, {"A"}, NOW)
    assert all(d.held for d in plan.decisions)
    assert [(s.order_id, s.quantity, s.on_hand_after) for s in plan.sales] == [
        ("O1", 3, 7),
        ("O3", 3, 4),
    ]
    assert plan.levels[("L", "A")] == StockLevel("L", "A", on_hand=4, reserved=3)
    assert plan.cause(("L", "A")) == "sale"


def test_references_are_checked_per_hold_and_refuse_only_that_hold():
    locations = {"L": location("L"), "OFF": location("OFF", active=False)}
    levels = stock(("L", "A", 5))
    holds = [
        Hold("O1", "mall", (line("1", "NOPE", 1, "L"),)),
        Hold("O2", "mall", (line("1", "A", 1, "OFF"),)),
        Hold("O3", "tmall", (line("1", "A", 1, "L"),)),
        Hold("O4", "mall", (line("1", "A", 1),), candidates=("L", "GONE")),
        Hold("O5", "mall", (line("1", "A", 1, "L"),)),
    ]
    decisions = decide_batch(holds, levels, locations, {"A"}, NOW).decisions
    fields = [
        [v.field for v in d.error.violations] if isinstance(d.error, InvalidArgument) else None
        for d in decisions
    ]
    assert fields == [
        ["lines[0].sku_code"],
        ["lines[0].location_id"],
        ["lines[0].location_id"],
        ["candidate_location_ids[1]"],
        None,
    ]
    assert decisions[4].held


def test_a_named_location_must_meet_the_capability_and_hours_asked_for():
    locations = {"L": location("L", hours=MONDAY_ONLY)}
    hold = Hold("O1", "mall", (line("1", "A", 1, "L"),), require_open_now=True)
    (decision,) = decide_batch([hold], stock(("L", "A", 5)), locations, {"A"}, NOW).decisions
    assert isinstance(decision.error, FailedPrecondition)
    assert decision.skipped == (Skipped("L", "closed now"),)


@pytest.mark.parametrize(
    ("hold", "fields"),
    [
        (Hold("O", "", (line("1", "A", 1, "L"),), candidates=("L",)), ["lines[0].location_id"]),
        (Hold("O", "", (line("1", "A", 1),), candidates=("L", "L")), ["candidate_location_ids[1]"]),
        (Hold("O", "", (line("1", "A", 1),), candidates=("",)), ["candidate_location_ids[0]"]),
        (Hold("O\x00", "", (line("1", "A", 1, "L"),)), ["order_id"]),
        (Hold("O", "", (line("1", "A", 1_000_001, "L"),)), ["lines[0].quantity"]),
        (
            Hold("O", "", (line("1", "A", 1),), candidates=tuple(f"L{i}" for i in range(201))),
            ["candidate_location_ids"],
        ),
        (Hold("O", "", (line("1", "A", 1),)), ["lines[0].location_id"]),
    ],
)
def test_malformed_holds_name_the_field(hold, fields):
    with pytest.raises(InvalidArgument) as caught:
        validate_hold(hold)
    assert [v.field for v in caught.value.violations] == fields


def test_a_hold_sent_again_is_the_same_only_with_the_same_lines_and_place():
    kept = Reservation(
        "O",
        "mall",
        ReservationStatus.ACTIVE,
        (ReservationLine("1", "A", "M", 2), ReservationLine("2", "B", "M", 1)),
        NOW,
        NOW,
        NOW,
    )
    routed = Hold("O", "mall", (line("2", "B", 1), line("1", "A", 2)), candidates=("L", "M"))
    assert same_hold(kept, routed)
    assert not same_hold(kept, Hold("O", "mall", routed.lines, candidates=("L",)))
    assert not same_hold(kept, Hold("O", "mall", (line("1", "A", 2),), candidates=("M",)))
    assert not same_hold(kept, Hold("O", "pos", routed.lines, candidates=("M",)))
    named = Hold("O", "mall", (line("1", "A", 2, "M"), line("2", "B", 1, "M")))
    assert same_hold(kept, named)
    assert not same_hold(kept, Hold("O", "mall", named.lines, confirm=True))


# --- properties ----------------------------------------------------------------------------

LOCS = ["L1", "L2", "L3", "L4"]
SKUS = ["S1", "S2", "S3"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[Key, StockLevel], dict[str, Location]]:
    levels: dict[Key, StockLevel] = {}
    for loc in LOCS:
        for sku in SKUS:
            if draw(st.booleans()):
                on_hand = draw(st.integers(0, 12))
                levels[(loc, sku)] = StockLevel(
                    loc,
                    sku,
                    on_hand,
                    # A count can leave reserved above on hand.
                    draw(st.integers(0, on_hand + 2)),
                    draw(st.integers(0, 2)),
                )
    locations = {
        loc: location(
            loc,
            active=draw(st.booleans()) or draw(st.booleans()),
            channels=tuple(draw(st.sets(st.sampled_from(["mall", "pos"]), min_size=1))),
            capabilities=frozenset(draw(st.sets(st.sampled_from(list(Capability))))),
            hours=draw(st.sampled_from([(), MONDAY_ONLY])),
        )
        for loc in LOCS
    }
    return levels, locations


@st.composite
def batches(draw: st.DrawFn) -> list[Hold]:
    found: list[Hold] = []
    for n in range(draw(st.integers(1, 12))):
        routed = draw(st.booleans())
        skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3))
        lines = tuple(
            line(
                str(i),
                sku,
                draw(st.integers(1, 6)),
                "" if routed else draw(st.sampled_from(LOCS)),
            )
            for i, sku in enumerate(skus)
        )
        found.append(
            Hold(
                f"O{n}",
                draw(st.sampled_from(["", "mall", "pos"])),
                lines,
                candidates=tuple(draw(st.permutations(LOCS))[: draw(st.integers(1, 4))])
                if routed
                else (),
                capability=draw(st.none() | st.sampled_from(list(Capability))),
                require_open_now=draw(st.booleans()),
                confirm=draw(st.booleans()),
            )
        )
    return found


def _units(decision_lines: Sequence[ReservationLine]) -> dict[Key, int]:
    units: dict[Key, int] = {}
    for held in decision_lines:
        key = (held.location_id, held.sku_code)
        units[key] = units.get(key, 0) + held.quantity
    return units


def _apply(levels: Mapping[Key, StockLevel], plan: BatchPlan) -> dict[Key, StockLevel]:
    return {**levels, **plan.levels}


@settings(deadline=None)
@given(worlds(), batches())
def test_never_oversell_and_each_hold_is_whole_or_nothing(world, holds):
    levels, locations = world
    plan = decide_batch(holds, levels, locations, set(SKUS), NOW)
    assert len(plan.decisions) == len(holds)
    reserved: dict[Key, int] = {}
    sold: dict[Key, int] = {}
    for hold, decision in zip(holds, plan.decisions, strict=True):
        if not decision.held:
            assert decision.lines == ()
            continue
        # Whole: every line, each unit once, and a routed hold at one location.
        assert sorted((x.line_id, x.sku_code, x.quantity) for x in decision.lines) == sorted(
            (x.line_id, x.sku_code, x.quantity) for x in hold.lines
        )
        if hold.routed:
            assert len({x.location_id for x in decision.lines}) == 1
        target = sold if hold.confirm else reserved
        for key, units in _units(decision.lines).items():
            target[key] = target.get(key, 0) + units
    assert plan.reserved_delta == reserved
    assert {k: -v for k, v in plan.on_hand_delta.items()} == sold
    for key, after in plan.levels.items():
        before = levels[key]
        assert after.reserved == before.reserved + reserved.get(key, 0)
        assert after.on_hand == before.on_hand - sold.get(key, 0)
        # Never oversell: nothing promised beyond on hand - reserved - safety stock.
        assert after.on_hand - after.reserved - after.safety_stock >= 0
    assert sum(s.quantity for s in plan.sales) == sum(sold.values())


@settings(deadline=None)
@given(worlds(), batches())
def test_a_batch_decides_what_the_holds_one_at_a_time_would(world, holds):
    levels, locations = world
    together = decide_batch(holds, levels, locations, set(SKUS), NOW)
    current = dict(levels)
    for hold, decision in zip(holds, together.decisions, strict=True):
        alone = decide_batch([hold], current, locations, set(SKUS), NOW)
        assert alone.decisions == [decision] or (
            # errors are compared by kind and message (exceptions compare by identity)
            not decision.held
            and type(alone.decisions[0].error) is type(decision.error)
            and str(alone.decisions[0].error) == str(decision.error)
            and alone.decisions[0].skipped == decision.skipped
        )
        current = _apply(current, alone)
    assert current == _apply(levels, together)


def _fits(hold: Hold, loc: Location, levels: Mapping[Key, StockLevel], at: datetime = NOW) -> bool:
    """An independent statement of the first-fit rule for one candidate."""
    needed: dict[str, int] = {}
    for x in hold.lines:
        needed[x.sku_code] = needed.get(x.sku_code, 0) + x.quantity
    return (
        loc.active
        and (not hold.channel or hold.channel in loc.channels)
        and (hold.capability is None or hold.capability in loc.capabilities)
        and (not hold.require_open_now or is_open(loc.opening_hours, loc.time_zone, at))
        and all(
            (lv := levels.get((loc.location_id, sku))) is not None
            and lv.on_hand - lv.reserved - lv.safety_stock >= qty
            for sku, qty in needed.items()
        )
    )


@settings(deadline=None)
@given(worlds(), batches())
def test_first_fit_takes_the_first_candidate_that_fits_and_explains_the_others(world, holds):
    levels, locations = world
    current = dict(levels)
    for hold in holds:
        plan = decide_batch([hold], current, locations, set(SKUS), NOW)
        (decision,) = plan.decisions
        if hold.routed:
            fitting = [c for c in hold.candidates if _fits(hold, locations[c], current)]
            if fitting:
                assert decision.held
                assert {x.location_id for x in decision.lines} == {fitting[0]}
                ranked_before = hold.candidates[: hold.candidates.index(fitting[0])]
                assert [s.location_id for s in decision.skipped] == list(ranked_before)
            else:
                assert isinstance(decision.error, NoLocationCanHold)
                assert [s.location_id for s in decision.skipped] == list(hold.candidates)
        current = _apply(current, plan)
