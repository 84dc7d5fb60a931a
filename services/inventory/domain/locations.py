"""Locations that hold stock: what makes one well formed, its default safety buffer by type,
and whether it is open at a given moment."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from libs.errors import Validator

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
CHANNEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MAX_NAME_LENGTH = 200
MAX_CHANNELS = 50
MINUTES_PER_DAY = 1440
# The same bound as SetSafetyStock (domain.stock.MAX_QUANTITY), so channel sums fit an int64.
MAX_SAFETY_STOCK = 1_000_000_000


class LocationType(enum.StrEnum):
    FACTORY_WAREHOUSE = "factory_warehouse"
    ECOMMERCE_WAREHOUSE = "ecommerce_warehouse"
    REGIONAL_WAREHOUSE = "regional_warehouse"
    STORE = "store"
    AGENT_WAREHOUSE = "agent_warehouse"


class Capability(enum.StrEnum):
    EXPRESS_SHIPPING = "express_shipping"
    SAME_CITY_DELIVERY = "same_city_delivery"
    PICKUP = "pickup"
    TRANSFER = "transfer"


# Store stock data is the least reliable (shrinkage, late POS sync), so stores keep a buffer
# that is never promised; the e-commerce warehouse is reliable and promises everything.
TYPE_DEFAULT_SAFETY_STOCK: dict[LocationType, int] = {
    LocationType.FACTORY_WAREHOUSE: 1,
    LocationType.ECOMMERCE_WAREHOUSE: 0,
    LocationType.REGIONAL_WAREHOUSE: 1,
    LocationType.STORE: 2,
    LocationType.AGENT_WAREHOUSE: 1,
}


@dataclass(frozen=True)
class OpeningHours:
    day_of_week: int  # ISO: 1 = Monday … 7 = Sunday
    open_minute: int
    close_minute: int


@dataclass(frozen=True)
class Location:
    location_id: str
    name: str
    type: LocationType | None
    province: str
    city: str
    latitude: float
    longitude: float
    time_zone: str
    opening_hours: tuple[OpeningHours, ...] = ()
    capabilities: frozenset[Capability] = frozenset()
    channels: tuple[str, ...] = ()
    default_safety_stock: int = 0
    active: bool = True
    created_at: datetime | None = field(default=None, compare=False)

    def validate(self) -> None:
        """Raises InvalidArgument naming every malformed field (prefixed ``location.``)."""
        v = Validator()
        p = "location."
        v.check(bool(self.location_id), p + "location_id", "is required")
        if self.location_id:
            v.check(
                bool(CODE_PATTERN.match(self.location_id)),
                p + "location_id",
                "must be 1-64 of A-Z, 0-9, '.', '_', '-', starting with a letter or digit",
            )
        v.check(bool(self.name.strip()), p + "name", "is required")
        v.check(len(self.name) <= MAX_NAME_LENGTH, p + "name", "must be at most 200 characters")
        v.check(self.type is not None, p + "type", "is required")
        v.check(bool(self.city.strip()), p + "city", "is required")
        v.check(bool(self.province.strip()), p + "province", "is required")
        v.check(-90 <= self.latitude <= 90, p + "latitude", "must be between -90 and 90")
        v.check(-180 <= self.longitude <= 180, p + "longitude", "must be between -180 and 180")
        v.check(time_zone_ok(self.time_zone), p + "time_zone", "must be an IANA time zone")
        for i, hours in enumerate(self.opening_hours):
            f = f"{p}opening_hours[{i}]"
            v.check(1 <= hours.day_of_week <= 7, f + ".day_of_week", "must be 1 (Mon) to 7 (Sun)")
            v.check(
                0 <= hours.open_minute < MINUTES_PER_DAY,
                f + ".open_minute",
                "must be 0..1439",
            )
            v.check(
                hours.open_minute < hours.close_minute <= MINUTES_PER_DAY,
                f + ".close_minute",
                "must be after open_minute and at most 1440",
            )
        v.check(
            len(self.channels) <= MAX_CHANNELS, p + "channels", f"at most {MAX_CHANNELS} entries"
        )
        for i, channel in enumerate(self.channels):
            v.check(
                bool(CHANNEL_PATTERN.match(channel)),
                f"{p}channels[{i}]",
                "must be 1-64 of letters, digits, '.', '_', ':', '-'",
            )
        v.check(self.default_safety_stock >= 0, p + "default_safety_stock", "must not be negative")
        v.check(
            self.default_safety_stock <= MAX_SAFETY_STOCK,
            p + "default_safety_stock",
            f"must be at most {MAX_SAFETY_STOCK}",
        )
        v.raise_if_any()


def time_zone_ok(name: str) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def is_open(hours: Sequence[OpeningHours], time_zone: str, at: datetime) -> bool:
    """Whether a location with these opening hours is open at the (aware) instant ``at``.

    No hours at all means always open (warehouses, online-only sites)."""
    if not hours:
        return True
    local = at.astimezone(ZoneInfo(time_zone))
    minute = local.hour * 60 + local.minute
    day = local.isoweekday()
    return any(h.day_of_week == day and h.open_minute <= minute < h.close_minute for h in hours)
