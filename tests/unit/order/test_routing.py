"""Routing rules one by one, and properties over random stock pictures."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from services.order.domain.routing import (
    Candidate,
    Capability,
    Decision,
    Line,
    Place,
    Request,
    Rules,
    Strategy,
    first_fit_decision,
    first_fit_is_conclusive,
    first_fit_refusal,
    rank_places,
    ranking_from_json,
    ranking_to_json,
    route,
)

ALL = frozenset(Capability)
EXPRESS = Request(
    Strategy.SHIP_TO_CUSTOMER,
    (Line("L1", "A", 1),),
    city="Shanghai",
    capability=Capability.EXPRESS_SHIPPING,
)


def cand(
    location_id: str,
    stock: dict[str, int],
    *,
    city: str = "Shanghai",
    km: float | None = 1.0,
    caps: frozenset[Capability] = ALL,
    open_now: bool = True,
) -> Candidate:
    return Candidate(location_id, city, caps, stock, None if km is None else km * 1000, open_now)


def verdicts(decision: Decision) -> dict[str, str]:
    return {v.location_id: v.reason for v in decision.verdicts}


def test_capability_for_the_mode() -> None:
    d = route(
        EXPRESS,
        [cand("NOCAP", {"A": 5}, km=0.1, caps=frozenset({Capability.PICKUP})), cand("W", {"A": 5})],
        Rules(),
    )
    assert [leg.location_id for leg in d.legs] == ["W"]
    assert "express_shipping" in verdicts(d)["NOCAP"]


def test_stock_must_cover_the_line() -> None:
    d = route(EXPRESS, [cand("SHORT", {"A": 0}, km=0.1), cand("W", {"A": 1}, km=9)], Rules())
    assert [leg.location_id for leg in d.legs] == ["W"]
    assert "no available stock" in verdicts(d)["SHORT"]


def test_same_city_first_then_distance() -> None:
    near_other_city = cand("HZ", {"A": 5}, city="Hangzhou", km=1)
    far_same_city = cand("SH", {"A": 5}, km=40)
    d = route(EXPRESS, [near_other_city, far_same_city], Rules())
    assert d.legs[0].location_id == "SH"
    d = route(EXPRESS, [near_other_city, far_same_city], Rules(same_city_first=False))
    assert d.legs[0].location_id == "HZ"
    d = route(EXPRESS, [cand("FAR", {"A": 5}, km=9), cand("NEAR", {"A": 5}, km=2)], Rules())
    assert d.legs[0].location_id == "NEAR"
    assert "ranked below NEAR" in verdicts(d)["FAR"]


def test_channel_priority_breaks_distance_ties() -> None:
    both = [cand("A1", {"A": 5}, km=2.1), cand("B1", {"A": 5}, km=2.4)]
    assert route(EXPRESS, both, Rules()).legs[0].location_id == "A1"
    tolerant = Rules(location_priority=("B1",), distance_tolerance_meters=1000)
    assert route(EXPRESS, both, tolerant).legs[0].location_id == "B1"
    excluded = Rules(excluded_location_ids=frozenset({"A1"}))
    d = route(EXPRESS, both, excluded)
    assert d.legs[0].location_id == "B1"
    assert "excluded" in verdicts(d)["A1"]


def test_one_location_for_everything_beats_a_nearer_split() -> None:
    request = Request(
        Strategy.SHIP_TO_CUSTOMER,
        (Line("L1", "A", 1), Line("L2", "B", 1)),
        city="Shanghai",
    )
    d = route(
        request,
        [
            cand("NA", {"A": 1}, km=1),
            cand("NB", {"B": 1}, km=1),
            cand("FAR", {"A": 1, "B": 1}, km=30),
        ],
        Rules(),
    )
    assert [leg.location_id for leg in d.legs] == ["FAR"]
    assert "serves the whole order" in verdicts(d)["NA"]


def test_split_when_needed_with_fewest_locations() -> None:
    request = Request(
        Strategy.SHIP_TO_CUSTOMER,
        (Line("L1", "A", 1), Line("L2", "B", 1), Line("L3", "C", 1)),
        city="Shanghai",
    )
    d = route(
        request,
        [cand("X", {"A": 1}, km=1), cand("Y", {"B": 1, "C": 1}, km=5), cand("Z", {"C": 1}, km=2)],
        Rules(),
    )
    assert d.routed and d.split
    assert {leg.location_id: leg.line_ids for leg in d.legs} == {"Y": ("L2", "L3"), "X": ("L1",)}


def test_same_sku_on_two_lines_needs_the_sum() -> None:
    request = Request(
        Strategy.SHIP_TO_CUSTOMER, (Line("L1", "A", 2), Line("L2", "A", 2)), city="Shanghai"
    )
    d = route(request, [cand("W", {"A": 3}, km=1), cand("V", {"A": 2}, km=5)], Rules())
    assert d.routed and d.split
    assert sorted(leg.location_id for leg in d.legs) == ["V", "W"]


def test_same_city_delivery_only_from_open_locations_in_the_city() -> None:
    request = Request(
        Strategy.SHIP_TO_CUSTOMER,
        (Line("L1", "A", 1),),
        city="Shanghai",
        capability=Capability.SAME_CITY_DELIVERY,
        same_city_only=True,
    )
    d = route(
        request,
        [
            cand("CLOSED", {"A": 1}, km=0.5, open_now=False),
            cand("HZ", {"A": 1}, city="Hangzhou", km=0.6),
            cand("OPEN", {"A": 1}, km=3),
        ],
        Rules(),
    )
    assert [leg.location_id for leg in d.legs] == ["OPEN"]
    assert "closed" in verdicts(d)["CLOSED"]
    assert "same-city" in verdicts(d)["HZ"]


def test_pickup_prefers_the_store_then_transfers_to_it() -> None:
    request = Request(
        Strategy.BRING_TO_STORE,
        (Line("L1", "A", 1),),
        city="Shanghai",
        handover_store_id="P",
    )
    here = route(request, [cand("W", {"A": 9}, km=0.1), cand("P", {"A": 1}, km=0)], Rules())
    assert [(leg.location_id, leg.via_transfer) for leg in here.legs] == [("P", False)]
    moved = route(
        request,
        [
            cand("P", {}, km=0),
            cand("NOXFER", {"A": 9}, km=0.1, caps=frozenset({Capability.PICKUP})),
            cand("W", {"A": 9}, km=5),
        ],
        Rules(),
    )
    assert [(leg.location_id, leg.via_transfer) for leg in moved.legs] == [("W", True)]
    assert "transfer" in verdicts(moved)["NOXFER"]


def test_no_transfer_to_a_store_that_cannot_receive_one() -> None:
    request = Request(
        Strategy.BRING_TO_STORE,
        (Line("L1", "A", 1),),
        handover_store_id="P",
        handover_accepts_transfers=False,
    )
    d = route(request, [cand("P", {}), cand("W", {"A": 9})], Rules())
    assert not d.routed
    assert "cannot receive transfers" in verdicts(d)["W"]


def test_store_sale_only_from_the_selling_store() -> None:
    request = Request(Strategy.AT_STORE, (Line("L1", "A", 1),), handover_store_id="S")
    d = route(request, [cand("W", {"A": 9}), cand("S", {})], Rules())
    assert not d.routed
    assert "selling store" in verdicts(d)["W"]
    assert "no eligible location has stock for L1" in d.failure_reason


def test_unfillable_names_the_short_line() -> None:
    request = Request(
        Strategy.SHIP_TO_CUSTOMER, (Line("L1", "A", 1), Line("L2", "B", 5)), city="Shanghai"
    )
    d = route(request, [cand("W", {"A": 1, "B": 4})], Rules())
    assert not d.routed and d.legs == ()
    assert "L2 (B x5)" in d.failure_reason


# --- properties ------------------------------------------------------------------------------

SKUS = ["A", "B", "C"]
candidates_st = st.lists(
    st.builds(
        cand,
        st.sampled_from([f"LOC{i}" for i in range(6)]),
        st.dictionaries(st.sampled_from(SKUS), st.integers(0, 4)),
        city=st.sampled_from(["Shanghai", "Hangzhou"]),
        km=st.one_of(st.none(), st.floats(0, 500)),
        caps=st.frozensets(st.sampled_from(list(Capability))),
        open_now=st.booleans(),
    ),
    max_size=6,
)
lines_st = st.lists(
    st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=4
).map(lambda ls: tuple(Line(f"L{i + 1}", s, q) for i, (s, q) in enumerate(ls)))
request_st = st.builds(
    Request,
    st.sampled_from(list(Strategy)),
    lines_st,
    city=st.sampled_from(["Shanghai", "Hangzhou"]),
    capability=st.sampled_from([Capability.EXPRESS_SHIPPING, Capability.SAME_CITY_DELIVERY]),
    same_city_only=st.booleans(),
    handover_store_id=st.sampled_from(["LOC0", "LOC1"]),
    handover_accepts_transfers=st.booleans(),
)


def _eligible(request: Request, c: Candidate) -> bool:
    if request.strategy is Strategy.AT_STORE:
        return c.location_id == request.handover_store_id
    if request.strategy is Strategy.BRING_TO_STORE:
        return c.location_id == request.handover_store_id or (
            request.handover_accepts_transfers and Capability.TRANSFER in c.capabilities
        )
    if request.capability not in c.capabilities:
        return False
    return not request.same_city_only or (c.city == request.city and c.open_now)


@settings(max_examples=300, deadline=None)
@given(request_st, candidates_st)
def test_never_routes_without_stock_or_capability(
    request: Request, candidates: list[Candidate]
) -> None:
    d = route(request, candidates, Rules())
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.location_id, c)
    by_line = {line.line_id: line for line in request.lines}
    served = [lid for leg in d.legs for lid in leg.line_ids]
    assert len(served) == len(set(served))
    if d.routed:
        assert sorted(served) == sorted(by_line)
    for leg in d.legs:
        c = first[leg.location_id]
        assert _eligible(request, c)
        need: dict[str, int] = {}
        for lid in leg.line_ids:
            need[by_line[lid].sku_code] = need.get(by_line[lid].sku_code, 0) + by_line[lid].quantity
        for sku, quantity in need.items():
            assert c.available.get(sku, 0) >= quantity


@settings(max_examples=300, deadline=None)
@given(request_st, candidates_st)
def test_never_splits_when_one_location_suffices(
    request: Request, candidates: list[Candidate]
) -> None:
    d = route(request, candidates, Rules())
    need: dict[str, int] = {}
    for line in request.lines:
        need[line.sku_code] = need.get(line.sku_code, 0) + line.quantity
    seen: set[str] = set()
    one_suffices = False
    for c in candidates:
        if c.location_id in seen:
            continue
        seen.add(c.location_id)
        if _eligible(request, c) and all(c.available.get(s, 0) >= q for s, q in need.items()):
            one_suffices = True
    if one_suffices:
        assert d.routed and len(d.legs) == 1
    # Every candidate gets exactly one verdict with a reason.
    assert sorted(v.location_id for v in d.verdicts) == sorted(seen)
    assert all(v.reason for v in d.verdicts)


# --- properties under the channel's rules ------------------------------------------------------

LOCATIONS = [f"LOC{i}" for i in range(6)]
rules_st = st.builds(
    Rules,
    version=st.integers(0, 5),
    same_city_first=st.booleans(),
    location_priority=st.permutations(LOCATIONS).flatmap(
        lambda order: st.integers(0, len(order)).map(lambda n: tuple(order[:n]))
    ),
    excluded_location_ids=st.frozensets(st.sampled_from(LOCATIONS), max_size=3),
    distance_tolerance_meters=st.sampled_from([0, 500, 5000]),
)
# Few distinct distances, so ties (and the rules that break them) are common.
tied_candidates_st = st.lists(
    st.builds(
        cand,
        st.sampled_from(LOCATIONS),
        st.dictionaries(st.sampled_from(SKUS), st.integers(0, 4)),
        city=st.sampled_from(["Shanghai", "Hangzhou"]),
        km=st.sampled_from([None, 1.0, 1.2, 3.0, 40.0]),
        caps=st.frozensets(st.sampled_from(list(Capability))),
        open_now=st.booleans(),
    ),
    max_size=6,
)
ship_request_st = st.builds(
    Request,
    st.just(Strategy.SHIP_TO_CUSTOMER),
    lines_st,
    city=st.sampled_from(["Shanghai", "Hangzhou"]),
    capability=st.sampled_from([Capability.EXPRESS_SHIPPING, Capability.SAME_CITY_DELIVERY]),
    same_city_only=st.booleans(),
)


def _first(candidates: list[Candidate]) -> dict[str, Candidate]:
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.location_id, c)
    return first


def _serves_all(request: Request, c: Candidate) -> bool:
    need: dict[str, int] = {}
    for line in request.lines:
        need[line.sku_code] = need.get(line.sku_code, 0) + line.quantity
    return all(c.available.get(s, 0) >= q for s, q in need.items())


@settings(max_examples=300, deadline=None)
@given(request_st, st.one_of(candidates_st, tied_candidates_st), rules_st)
def test_rules_never_route_to_excluded_unstocked_or_incapable_locations(
    request: Request, candidates: list[Candidate], rules: Rules
) -> None:
    d = route(request, candidates, rules)
    first = _first(candidates)
    by_line = {line.line_id: line for line in request.lines}
    assert d.rules_version == rules.version
    for leg in d.legs:
        c = first[leg.location_id]
        assert leg.location_id not in rules.excluded_location_ids
        assert _eligible(request, c)
        need: dict[str, int] = {}
        for lid in leg.line_ids:
            need[by_line[lid].sku_code] = need.get(by_line[lid].sku_code, 0) + by_line[lid].quantity
        assert all(c.available.get(s, 0) >= q for s, q in need.items())
    for v in d.verdicts:
        if v.location_id in rules.excluded_location_ids:
            assert not v.chosen and "excluded" in v.reason


@settings(max_examples=300, deadline=None)
@given(request_st, st.one_of(candidates_st, tied_candidates_st), rules_st)
def test_rules_never_split_when_one_allowed_location_suffices(
    request: Request, candidates: list[Candidate], rules: Rules
) -> None:
    d = route(request, candidates, rules)
    allowed = [
        c
        for c in _first(candidates).values()
        if c.location_id not in rules.excluded_location_ids and _eligible(request, c)
    ]
    if any(_serves_all(request, c) for c in allowed):
        assert d.routed and len(d.legs) == 1


@settings(max_examples=300, deadline=None)
@given(ship_request_st, tied_candidates_st, rules_st)
def test_same_city_first_distance_then_priority_pick_the_single_location(
    request: Request, candidates: list[Candidate], rules: Rules
) -> None:
    d = route(request, candidates, rules)
    whole = [
        c
        for c in _first(candidates).values()
        if c.location_id not in rules.excluded_location_ids
        and _eligible(request, c)
        and _serves_all(request, c)
    ]
    if not whole:
        return
    (leg,) = d.legs
    winner = _first(candidates)[leg.location_id]
    if rules.same_city_first and any(c.city == request.city for c in whole):
        # Same city first: a location in the customer's city wins when one can serve.
        assert winner.city == request.city
        whole = [c for c in whole if c.city == request.city]
    if rules.distance_tolerance_meters == 0:
        # Then the nearest (unknown distance last) ...
        def meters(c: Candidate) -> float:
            return c.distance_meters if c.distance_meters is not None else float("inf")

        nearest = min(meters(c) for c in whole)
        assert meters(winner) == nearest
        tied = [c for c in whole if meters(c) == nearest]

        # ... and among equally near ones the channel's location priority, then the id.
        def priority(c: Candidate) -> tuple[int, str]:
            p = rules.location_priority
            return (p.index(c.location_id) if c.location_id in p else len(p), c.location_id)

        assert priority(winner) == min(priority(c) for c in tied)


def test_same_city_first_off_lets_a_nearer_other_city_location_win() -> None:
    near_hz = cand("HZ", {"A": 1}, city="Hangzhou", km=1)
    far_sh = cand("SH", {"A": 1}, km=50)
    assert (
        route(EXPRESS, [near_hz, far_sh], Rules(same_city_first=True)).legs[0].location_id == "SH"
    )
    off = route(EXPRESS, [near_hz, far_sh], Rules(same_city_first=False))
    assert off.legs[0].location_id == "HZ"


def test_priority_and_exclusions_together() -> None:
    same = [cand("P1", {"A": 1}, km=2), cand("P2", {"A": 1}, km=2), cand("P3", {"A": 1}, km=2)]
    rules = Rules(location_priority=("P3", "P2"), excluded_location_ids=frozenset({"P3"}))
    d = route(EXPRESS, same, rules)
    assert d.legs[0].location_id == "P2"
    assert "excluded" in verdicts(d)["P3"]
    assert "ranked below P2" in verdicts(d)["P1"]


# --- first fit: the stock-free ranking agrees with routing ------------------------------------


def _first_fit_winner(request: Request, ranked_ids: list[str], by_id: dict[str, Candidate]) -> str:
    """What inventory does with the ranking: the first candidate open (when asked) with
    every line available."""
    open_now = request.strategy is Strategy.SHIP_TO_CUSTOMER and request.same_city_only
    for location_id in ranked_ids:
        c = by_id[location_id]
        if open_now and not c.open_now:
            continue
        if _serves_all(request, c):
            return location_id
    return ""


@settings(max_examples=500, deadline=None)
@given(request_st, st.one_of(candidates_st, tied_candidates_st), rules_st)
def test_first_fit_over_the_stock_free_ranking_is_what_routing_chooses(
    request: Request, candidates: list[Candidate], rules: Rules
) -> None:
    """Whenever one location can take the whole order directly, holding it at the first of
    the ranked locations that can (inventory's first fit) is exactly routing's choice; when
    none can, routing does not route the whole order directly to one location either."""
    by_id = _first(candidates)
    ranking = rank_places(
        request,
        [Place(c.location_id, c.city, c.capabilities, c.distance_meters) for c in by_id.values()],
        rules,
    )
    ranked = [e.candidate.location_id for e in ranking.direct]
    winner = _first_fit_winner(request, ranked, by_id)
    decision = route(request, list(by_id.values()), rules)
    direct_whole = [
        leg.location_id for leg in decision.legs if len(decision.legs) == 1 and not leg.via_transfer
    ]
    if winner:
        assert direct_whole == [winner]
        explained = first_fit_decision(request, ranking, rules, winner, {})
        assert [leg.location_id for leg in explained.legs] == [winner]
        chosen = [v.location_id for v in explained.verdicts if v.chosen]
        assert chosen == [winner]
        reasons = {v.location_id: v.reason for v in explained.verdicts}
        for location_id in ranked[ranked.index(winner) + 1 :]:
            assert reasons[location_id].startswith(f"ranked below {winner}")
    else:
        assert direct_whole == []
        if first_fit_is_conclusive(request, ranking, len(ranking.direct)):
            # Nothing left for routing in full to find: it parks the order too.
            assert not decision.routed
            refusal = first_fit_refusal(request, ranking, rules, {})
            assert not refusal.routed
            assert refusal.failure_reason.startswith("no eligible location has stock")


def test_the_ranking_survives_being_stored_with_the_order() -> None:
    request = Request(
        Strategy.SHIP_TO_CUSTOMER,
        (Line("L1", "A", 1),),
        city="Shanghai",
        capability=Capability.EXPRESS_SHIPPING,
    )
    places = [
        Place("NEAR", "Shanghai", ALL, 1000.0),
        Place("FAR", "Hangzhou", ALL, 170_000.0),
        Place("NOCAP", "Shanghai", frozenset({Capability.PICKUP}), 10.0),
    ]
    ranking = rank_places(request, places, Rules())
    again = ranking_from_json(json.loads(json.dumps(ranking_to_json(ranking))))
    assert [e.candidate.location_id for e in again.direct] == ["NEAR", "FAR"]
    decision = first_fit_decision(request, again, Rules(), "FAR", {"NEAR": "only 0 of A"})
    reasons = {v.location_id: v.reason for v in decision.verdicts}
    assert reasons["NEAR"] == "only 0 of A"
    assert "express_shipping" in reasons["NOCAP"]
    assert "one location serves the whole order" in reasons["FAR"]
