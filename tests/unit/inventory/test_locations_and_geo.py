"""Locations (validation, opening hours) and the geometry of nearest stock, without I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.inventory.domain.geo import bounding_box, haversine_m, in_box
from services.inventory.domain.locations import Location, LocationType, OpeningHours, is_open
from services.inventory.domain.nearest_stock import NearbyCandidate, select_nearby

STORE = Location(
    location_id="SH-001",
    name="Nanjing Road store",
    type=LocationType.STORE,
    province="Shanghai",
    city="Shanghai",
    latitude=31.2354,
    longitude=121.4747,
    time_zone="Asia/Shanghai",
    opening_hours=tuple(OpeningHours(day, 10 * 60, 22 * 60) for day in range(1, 8)),
)


def test_a_store_opens_by_its_own_time_zone():
    # 03:30 UTC is 11:30 in Shanghai (open) and 22:30 the day before in New York (closed).
    at = datetime(2026, 3, 2, 3, 30, tzinfo=UTC)
    assert is_open(STORE.opening_hours, "Asia/Shanghai", at)
    assert not is_open(STORE.opening_hours, "America/New_York", at)
    assert not is_open(
        STORE.opening_hours, "Asia/Shanghai", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    )
    assert is_open((), "Asia/Shanghai", at)  # no hours: a warehouse that never closes


def test_closing_minute_is_exclusive():
    hours = (OpeningHours(1, 600, 1320),)
    monday_22 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    monday_2159 = datetime(2026, 3, 2, 13, 59, tzinfo=UTC)
    assert not is_open(hours, "Asia/Shanghai", monday_22)
    assert is_open(hours, "Asia/Shanghai", monday_2159)


def test_a_malformed_location_names_every_bad_field():
    bad = replace(
        STORE,
        location_id="bad id",
        type=None,
        latitude=91,
        time_zone="Nowhere/Else",
        opening_hours=(OpeningHours(0, 100, 50),),
        channels=("ok", "not ok"),
        default_safety_stock=-1,
    )
    with pytest.raises(InvalidArgument) as caught:
        bad.validate()
    assert [v.field for v in caught.value.violations] == [
        "location.location_id",
        "location.type",
        "location.latitude",
        "location.time_zone",
        "location.opening_hours[0].day_of_week",
        "location.opening_hours[0].close_minute",
        "location.channels[1]",
        "location.default_safety_stock",
    ]
    STORE.validate()


latitudes = st.floats(min_value=-89.9, max_value=89.9)
longitudes = st.floats(min_value=-180, max_value=180)


@given(latitudes, longitudes, st.floats(min_value=1, max_value=1_000_000), latitudes, longitudes)
def test_every_point_within_the_radius_is_inside_the_bounding_box(lat, lng, radius, plat, plng):
    if haversine_m(lat, lng, plat, plng) <= radius:
        assert in_box(bounding_box(lat, lng, radius), plat, plng)


@given(
    latitudes,
    longitudes,
    st.floats(min_value=1, max_value=500_000),
    st.floats(min_value=0, max_value=360),
    st.floats(min_value=0, max_value=1),
)
def test_points_at_any_bearing_inside_the_circle_are_in_the_box(lat, lng, radius, bearing, share):
    # Walk from the centre along a bearing for a share of the radius (spherical formula).
    import math

    d = radius * share / 6_371_008.8
    p1, l1, b = math.radians(lat), math.radians(lng), math.radians(bearing)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    plat, plng = math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180
    assert in_box(bounding_box(lat, lng, radius * 1.000001), plat, plng)


def test_distance_between_two_known_points():
    # People's Square to the Bund, Shanghai: about 1.5 km.
    assert haversine_m(31.2304, 121.4737, 31.2400, 121.4900) == pytest.approx(1_870, rel=0.05)


def candidate(location_id: str, distance: float, **available: int) -> NearbyCandidate:
    return NearbyCandidate(replace(STORE, location_id=location_id), distance, dict(available))


def test_nearby_keeps_nearest_first_and_filters_partial_and_closed():
    found = [
        candidate("FAR", 900, A=5, B=5),
        candidate("NEAR", 100, A=1),
        candidate("MID", 500, A=2, B=1),
    ]
    wanted = [("A", 2), ("B", 1)]
    open_at = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    closed_at = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    chosen = select_nearby(found, wanted, open_now=False, require_all=False, at=open_at, limit=10)
    assert [(c.location.location_id, c.has_all) for c in chosen] == [
        ("NEAR", False),
        ("MID", True),
        ("FAR", True),
    ]
    only_all = select_nearby(found, wanted, open_now=True, require_all=True, at=open_at, limit=1)
    assert [c.location.location_id for c in only_all] == ["MID"]
    assert (
        select_nearby(found, wanted, open_now=True, require_all=False, at=closed_at, limit=10) == []
    )
