"""Distances on the earth for "nearest stock": a bounding box to prefilter in SQL with plain
indexes (no PostGIS), and the great-circle distance to rank what is inside."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8
METERS_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180
MAX_RADIUS_M = 1_000_000.0


@dataclass(frozen=True)
class BoundingBox:
    min_lat: float
    max_lat: float
    min_lng: float
    max_lng: float
    # True when the box crosses the antimeridian: longitude is then outside [max, min].
    wraps: bool = False


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lng: float, radius_m: float) -> BoundingBox:
    """A lat/lng box that contains every point within ``radius_m`` of (lat, lng)."""
    dlat = radius_m / METERS_PER_DEGREE_LAT
    min_lat, max_lat = lat - dlat, lat + dlat
    if min_lat <= -90 or max_lat >= 90:
        # A pole is inside the circle: every longitude can be in range.
        return BoundingBox(max(min_lat, -90), min(max_lat, 90), -180, 180)
    # The widest longitude span is at the latitude nearest a pole that the circle reaches.
    dlng = math.degrees(
        math.asin(min(1.0, math.sin(radius_m / EARTH_RADIUS_M) / math.cos(math.radians(lat))))
    )
    min_lng, max_lng = lng - dlng, lng + dlng
    if dlng >= 180 or max_lng - min_lng >= 360:
        return BoundingBox(min_lat, max_lat, -180, 180)
    if min_lng < -180:
        return BoundingBox(min_lat, max_lat, min_lng + 360, max_lng, wraps=True)
    if max_lng > 180:
        return BoundingBox(min_lat, max_lat, min_lng, max_lng - 360, wraps=True)
    return BoundingBox(min_lat, max_lat, min_lng, max_lng)


def in_box(box: BoundingBox, lat: float, lng: float) -> bool:
    if not box.min_lat <= lat <= box.max_lat:
        return False
    if box.wraps:
        return lng >= box.min_lng or lng <= box.max_lng
    return box.min_lng <= lng <= box.max_lng
