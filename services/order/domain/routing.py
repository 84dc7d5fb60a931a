"""Routing (寻源): which locations serve which lines of an order, and why.

Pure rules, no I/O: the service layer gathers the candidates from inventory (nearest stock
and ATP) and the channel's rules; this module decides. Rules, in order:

1. capability — a location must be able to do what the mode needs (express shipping,
   same-city delivery, or transfer towards the handover store); the handover store itself
   serves directly without a transfer;
2. stock — a location only serves a line it has available in full;
3. same-city delivery only from open locations in the customer's city;
4. as few locations as possible: one location that serves everything beats any split;
5. ranking among equals: same city first (when the rule is on), then distance (within the
   tolerance counts as equal), then the channel's location priority, then the id.

Every candidate gets a reason for winning or losing, stored with the decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Strategy(Enum):
    """How the goods reach the customer, seen from routing."""

    # Sold and handed over at the counter: only the selling store, no transfer.
    AT_STORE = "at_store"
    # Sent to the customer's address (courier or same-city rider).
    SHIP_TO_CUSTOMER = "ship_to_customer"
    # Handed over in a store (pickup, guide): that store directly, others by transfer.
    BRING_TO_STORE = "bring_to_store"


class Capability(Enum):
    EXPRESS_SHIPPING = "express_shipping"
    SAME_CITY_DELIVERY = "same_city_delivery"
    PICKUP = "pickup"
    TRANSFER = "transfer"


@dataclass(frozen=True)
class Line:
    line_id: str
    sku_code: str
    quantity: int


@dataclass(frozen=True)
class Candidate:
    location_id: str
    city: str
    capabilities: frozenset[Capability]
    # Available to promise per SKU at this location (for the order's channel).
    available: Mapping[str, int]
    # Meters from the customer (or handover store); None when unknown.
    distance_meters: float | None = None
    open_now: bool = True


@dataclass(frozen=True)
class Rules:
    version: int = 0
    same_city_first: bool = True
    location_priority: tuple[str, ...] = ()
    excluded_location_ids: frozenset[str] = frozenset()
    distance_tolerance_meters: int = 0


@dataclass(frozen=True)
class Request:
    strategy: Strategy
    lines: tuple[Line, ...]
    # The customer's city (ship to customer) or the handover store's city.
    city: str = ""
    # SHIP_TO_CUSTOMER: the capability the location needs.
    capability: Capability = Capability.EXPRESS_SHIPPING
    # Same-city delivery: only open locations of the same city.
    same_city_only: bool = False
    # AT_STORE / BRING_TO_STORE: the store where the goods are handed over.
    handover_store_id: str = ""
    # BRING_TO_STORE: whether that store can receive transfers (TRANSFER capability).
    handover_accepts_transfers: bool = True


@dataclass(frozen=True)
class Leg:
    """One location's share of the order."""

    location_id: str
    line_ids: tuple[str, ...]
    via_transfer: bool
    distance_meters: float | None
    same_city: bool


@dataclass(frozen=True)
class Verdict:
    location_id: str
    chosen: bool
    reason: str
    distance_meters: float | None
    same_city: bool
    line_ids: tuple[str, ...] = ()
    via_transfer: bool = False


@dataclass(frozen=True)
class Decision:
    routed: bool
    legs: tuple[Leg, ...]
    verdicts: tuple[Verdict, ...]
    failure_reason: str = ""
    rules_version: int = 0

    @property
    def split(self) -> bool:
        return len(self.legs) > 1


@dataclass
class _Eligible:
    candidate: Candidate
    via_transfer: bool
    same_city: bool
    remaining: dict[str, int] = field(default_factory=dict)


def haversine_meters(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance; good enough to rank locations and hint a route."""
    radius = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(min(1.0, math.sqrt(a)))


def _capability_reason(request: Request, candidate: Candidate) -> tuple[str, bool] | None:
    """Why a candidate is excluded before stock is looked at (None = eligible), and whether
    it would serve through a transfer."""
    if request.strategy is Strategy.AT_STORE:
        if candidate.location_id != request.handover_store_id:
            return ("not the selling store (a store sale is handed over at once)", False)
        return None
    if request.strategy is Strategy.BRING_TO_STORE:
        if candidate.location_id == request.handover_store_id:
            return None
        if not request.handover_accepts_transfers:
            return (f"{request.handover_store_id} cannot receive transfers", True)
        if Capability.TRANSFER not in candidate.capabilities:
            return (
                f"cannot transfer to {request.handover_store_id} (no transfer capability)",
                True,
            )
        return None
    if request.capability not in candidate.capabilities:
        return (f"lacks the {request.capability.value} capability", False)
    if request.same_city_only:
        if candidate.city != request.city:
            return (f"not in {request.city or 'the customer city'} (same-city delivery)", False)
        if not candidate.open_now:
            return ("closed now (same-city delivery needs an open location)", False)
    return None


def _classify(request: Request, rules: Rules, c: Candidate) -> _Eligible | Verdict:
    """Eligible (and how: directly or by transfer), or the verdict excluding it before
    stock is looked at."""
    same_city = bool(request.city) and c.city == request.city
    if c.location_id in rules.excluded_location_ids:
        return Verdict(
            c.location_id, False, "excluded by the channel's rules", c.distance_meters, same_city
        )
    excluded = _capability_reason(request, c)
    if excluded is not None:
        return Verdict(c.location_id, False, excluded[0], c.distance_meters, same_city)
    via_transfer = (
        request.strategy is Strategy.BRING_TO_STORE and c.location_id != request.handover_store_id
    )
    return _Eligible(c, via_transfer, same_city, {k: v for k, v in c.available.items() if v > 0})


def _rank_key(rules: Rules, e: _Eligible) -> tuple[int, float, int, str]:
    c = e.candidate
    # Handing over where the goods already are always beats a transfer.
    transfer_penalty = 1 if e.via_transfer else 0
    city = 0 if (e.same_city or not rules.same_city_first) else 1
    distance = c.distance_meters if c.distance_meters is not None else math.inf
    if rules.distance_tolerance_meters > 0 and distance != math.inf:
        distance = float(int(distance // rules.distance_tolerance_meters))
    try:
        priority = rules.location_priority.index(c.location_id)
    except ValueError:
        priority = len(rules.location_priority)
    return (transfer_penalty * 2 + city, distance, priority, c.location_id)


def _serves(e: _Eligible, lines: Sequence[Line]) -> list[Line]:
    """The lines (whole lines only) this location can take from its remaining stock."""
    left = dict(e.remaining)
    taken: list[Line] = []
    for line in lines:
        if left.get(line.sku_code, 0) >= line.quantity:
            left[line.sku_code] -= line.quantity
            taken.append(line)
    return taken


def route(request: Request, candidates: Sequence[Candidate], rules: Rules) -> Decision:
    """Choose the locations for the order's lines (see the module docstring for the rules)."""
    verdicts: dict[str, Verdict] = {}
    eligible: list[_Eligible] = []
    seen: set[str] = set()
    seen_order: list[str] = []
    for c in candidates:
        if c.location_id in seen:
            continue
        seen.add(c.location_id)
        seen_order.append(c.location_id)
        found = _classify(request, rules, c)
        if isinstance(found, Verdict):
            verdicts[c.location_id] = found
        else:
            eligible.append(found)
    ranked = sorted(eligible, key=lambda e: _rank_key(rules, e))
    rank_of = {e.candidate.location_id: i for i, e in enumerate(ranked)}

    lines = list(request.lines)
    legs: list[Leg] = []
    # Rule 4: the best-ranked single location that serves every line wins outright.
    whole = next((e for e in ranked if len(_serves(e, lines)) == len(lines)), None)
    if whole is not None:
        legs.append(_leg(whole, lines))
        remaining: list[Line] = []
    else:
        # Fewest locations: repeatedly take the one serving the most remaining lines
        # (ties by rank). Greedy set cover is not always minimal, but never splits when one
        # location suffices, and orders have few lines.
        remaining = lines
        pool = list(ranked)
        while remaining and pool:
            best = max(
                pool, key=lambda e: (len(_serves(e, remaining)), -rank_of[e.candidate.location_id])
            )
            taken = _serves(best, remaining)
            if not taken:
                break
            legs.append(_leg(best, taken))
            pool.remove(best)
            taken_ids = {line.line_id for line in taken}
            remaining = [line for line in remaining if line.line_id not in taken_ids]

    chosen = {leg.location_id: leg for leg in legs}
    winner = legs[0].location_id if legs else ""
    for e in ranked:
        c = e.candidate
        leg = chosen.get(c.location_id)
        if leg is not None:
            how = "by transfer to " + request.handover_store_id if leg.via_transfer else "directly"
            reason = (
                f"serves lines {', '.join(leg.line_ids)} {how}"
                + (" (one location serves the whole order)" if len(legs) == 1 else " (split)")
                + _why_ranked(e)
            )
            verdicts[c.location_id] = Verdict(
                c.location_id,
                True,
                reason,
                c.distance_meters,
                e.same_city,
                leg.line_ids,
                leg.via_transfer,
            )
            continue
        if not _serves(e, lines):
            reason = "no available stock for any line"
        elif len(_serves(e, lines)) < len(lines) and whole is not None:
            reason = f"cannot serve every line; {winner} serves the whole order"
        else:
            reason = f"ranked below {winner}{_why_ranked(_find(ranked, winner))}"
        verdicts[c.location_id] = Verdict(
            c.location_id, False, reason, c.distance_meters, e.same_city
        )

    # One verdict per location, in the order inventory listed them.
    ordered = tuple(verdicts[location_id] for location_id in dict.fromkeys(seen_order))
    if remaining:
        short = ", ".join(
            f"{line.line_id} ({line.sku_code} x{line.quantity})" for line in remaining
        )
        return Decision(
            False, (), ordered, f"no eligible location has stock for {short}", rules.version
        )
    if not legs:
        return Decision(False, (), ordered, "no eligible location", rules.version)
    return Decision(True, tuple(legs), ordered, "", rules.version)


def _find(ranked: Sequence[_Eligible], location_id: str) -> _Eligible | None:
    return next((e for e in ranked if e.candidate.location_id == location_id), None)


def _why_ranked(e: _Eligible | None) -> str:
    if e is None:
        return ""
    parts = ["same city" if e.same_city else "other city"]
    if e.candidate.distance_meters is not None:
        parts.append(f"{e.candidate.distance_meters / 1000:.1f} km")
    return f" [{', '.join(parts)}]"


def _leg(e: _Eligible, lines: Sequence[Line]) -> Leg:
    for line in lines:
        e.remaining[line.sku_code] = e.remaining.get(line.sku_code, 0) - line.quantity
    return Leg(
        e.candidate.location_id,
        tuple(line.line_id for line in lines),
        e.via_transfer,
        e.candidate.distance_meters,
        e.same_city,
    )


# --- first fit: the whole order at the best-ranked location that has all of it -------------
#
# Rule 4 makes the winner of an order that one location can serve "the best-ranked eligible
# location holding every line" — and the ranking never looks at stock. So the order service
# ranks the locations it knows (no stock needed) and asks inventory to hold the whole order
# at the first of them that has everything, in one atomic step; only when none can does it
# route in full (split, transfers) as above.


@dataclass(frozen=True)
class Place:
    """A location as routing sees it before stock: where it is and what it can do."""

    location_id: str
    city: str
    capabilities: frozenset[Capability]
    distance_meters: float | None = None


@dataclass(frozen=True)
class Ranking:
    # Locations that could take the whole order directly, best first.
    direct: tuple[_Eligible, ...]
    # Eligible only through a transfer (routed in full when no direct one can serve).
    by_transfer: tuple[_Eligible, ...]
    # Not eligible, with the reason.
    excluded: tuple[Verdict, ...]


def rank_places(request: Request, places: Sequence[Place], rules: Rules) -> Ranking:
    """Every place classified and the eligible ones ranked (same rules as ``route``;
    whether a same-city location is open now is left to the hold, which checks it)."""
    direct: list[_Eligible] = []
    transfer: list[_Eligible] = []
    excluded: list[Verdict] = []
    for p in places:
        candidate = Candidate(p.location_id, p.city, p.capabilities, {}, p.distance_meters)
        found = _classify(request, rules, candidate)
        if isinstance(found, Verdict):
            excluded.append(found)
        elif found.via_transfer:
            transfer.append(found)
        else:
            direct.append(found)
    direct.sort(key=lambda e: _rank_key(rules, e))
    transfer.sort(key=lambda e: _rank_key(rules, e))
    return Ranking(tuple(direct), tuple(transfer), tuple(excluded))


def first_fit_decision(
    request: Request,
    ranking: Ranking,
    rules: Rules,
    winner_id: str,
    skipped: Mapping[str, str],
    max_verdicts: int = 50,
) -> Decision:
    """The explanation of a whole-order hold at ``winner_id``: the locations ranked before
    it could not take it (``skipped``: inventory's reasons), the ones after were ranked
    below, the others were not eligible. At most ``max_verdicts`` verdicts: the winner,
    those tried before it, then the nearest of the rest."""
    winner = next(e for e in ranking.direct if e.candidate.location_id == winner_id)
    lines = tuple(line.line_id for line in request.lines)
    leg = Leg(winner_id, lines, False, winner.candidate.distance_meters, winner.same_city)
    chosen = Verdict(
        winner_id,
        True,
        f"serves lines {', '.join(lines)} directly (one location serves the whole order)"
        + _why_ranked(winner),
        winner.candidate.distance_meters,
        winner.same_city,
        lines,
        False,
    )
    verdicts = [chosen]
    before = True
    rest: list[Verdict] = []
    for e in ranking.direct:
        c = e.candidate
        if c.location_id == winner_id:
            before = False
            continue
        if before:
            reason = skipped.get(c.location_id, "could not take every line")
            verdicts.append(Verdict(c.location_id, False, reason, c.distance_meters, e.same_city))
        else:
            rest.append(_ranked_below(e, winner))
    rest.extend(_ranked_below(e, winner) for e in ranking.by_transfer)
    rest.extend(ranking.excluded)
    rest.sort(key=lambda v: (v.distance_meters is None, v.distance_meters or 0.0, v.location_id))
    verdicts.extend(rest[: max(0, max_verdicts - len(verdicts))])
    verdicts.sort(key=lambda v: v.location_id)
    return Decision(True, (leg,), tuple(verdicts), "", rules.version)


def first_fit_refusal(
    request: Request,
    ranking: Ranking,
    rules: Rules,
    skipped: Mapping[str, str],
    max_verdicts: int = 50,
) -> Decision:
    """The explanation of an order no ranked location could take whole, when routing in
    full could not do better (see ``first_fit_is_conclusive``): unfillable, every location
    with its reason."""
    verdicts = [
        Verdict(
            e.candidate.location_id,
            False,
            skipped.get(e.candidate.location_id, "could not take every line"),
            e.candidate.distance_meters,
            e.same_city,
        )
        for e in ranking.direct
    ]
    verdicts.extend(ranking.excluded[: max(0, max_verdicts - len(verdicts))])
    verdicts.sort(key=lambda v: v.location_id)
    short = ", ".join(
        f"{line.line_id} ({line.sku_code} x{line.quantity})" for line in request.lines
    )
    return Decision(
        False,
        (),
        tuple(verdicts),
        f"no eligible location has stock for {short}",
        rules.version,
    )


def first_fit_is_conclusive(request: Request, ranking: Ranking, tried: int) -> bool:
    """Whether a refused first fit settles the order's routing: it tried every eligible
    location (``tried`` of them), none could serve through a transfer, and the order has a
    single line — a line is never split, so routing in full would find nothing either."""
    return len(request.lines) == 1 and not ranking.by_transfer and tried >= len(ranking.direct)


def _ranked_below(e: _Eligible, winner: _Eligible) -> Verdict:
    c = e.candidate
    return Verdict(
        c.location_id,
        False,
        f"ranked below {winner.candidate.location_id}{_why_ranked(winner)}",
        c.distance_meters,
        e.same_city,
    )


def ranking_to_json(ranking: Ranking, limit: int = 50) -> dict[str, Any]:
    """What a first-fit hold's explanation needs of the ranking, kept with the order while
    the hold is asked (bounded: the first ``limit`` of each kind)."""

    def eligible(items: Sequence[_Eligible]) -> list[list[Any]]:
        return [
            [e.candidate.location_id, e.candidate.city, e.candidate.distance_meters, e.same_city]
            for e in items[:limit]
        ]

    return {
        "direct": eligible(ranking.direct),
        "by_transfer": eligible(ranking.by_transfer),
        "excluded": [
            [v.location_id, v.reason, v.distance_meters, v.same_city]
            for v in sorted(
                ranking.excluded,
                key=lambda v: (v.distance_meters is None, v.distance_meters or 0.0, v.location_id),
            )[:limit]
        ],
    }


def ranking_from_json(data: Mapping[str, Any]) -> Ranking:
    def eligible(items: Sequence[Sequence[Any]], via_transfer: bool) -> tuple[_Eligible, ...]:
        return tuple(
            _Eligible(
                Candidate(str(i[0]), str(i[1]), frozenset(), {}, i[2]), via_transfer, bool(i[3])
            )
            for i in items
        )

    return Ranking(
        eligible(data["direct"], False),
        eligible(data["by_transfer"], True),
        tuple(Verdict(str(i[0]), False, str(i[1]), i[2], bool(i[3])) for i in data["excluded"]),
    )
