"""Which nearby locations to offer for "nearest stock" (附近门店): nearest first, open now if
asked, holding every asked-for SKU if asked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.inventory.domain.locations import Location, is_open


@dataclass(frozen=True)
class NearbyCandidate:
    location: Location
    distance_m: float
    # Available to promise per SKU at this location (only SKUs with some available).
    available: dict[str, int]


@dataclass(frozen=True)
class NearbyStock:
    location: Location
    distance_m: float
    available: dict[str, int]
    has_all: bool


def select_nearby(
    candidates: Sequence[NearbyCandidate],
    wanted: Sequence[tuple[str, int]],
    *,
    open_now: bool,
    require_all: bool,
    at: datetime,
    limit: int,
) -> list[NearbyStock]:
    """Candidates come nearest first; keep that order, drop closed ones when ``open_now``
    and partial ones when ``require_all``, stop at ``limit``."""
    chosen: list[NearbyStock] = []
    for candidate in sorted(candidates, key=lambda c: (c.distance_m, c.location.location_id)):
        if len(chosen) >= limit:
            break
        location = candidate.location
        if open_now and not is_open(location.opening_hours, location.time_zone, at):
            continue
        has_all = all(candidate.available.get(sku, 0) >= max(qty, 1) for sku, qty in wanted)
        if require_all and not has_all:
            continue
        chosen.append(NearbyStock(location, candidate.distance_m, candidate.available, has_all))
    return chosen
