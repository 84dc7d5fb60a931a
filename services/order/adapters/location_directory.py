"""The locations serving a stock channel, as routing ranks them before looking at stock:
read from inventory (ListLocations) and kept in memory with inventory's locations_version.

A first-fit hold carries the version its ranking was made at; inventory refuses it as stale
when any location changed since, and the directory is then read again — so a ranking is
never made from locations that are out of date, however long they were cached. Without a
refusal the directory is still re-read every ``max_age_seconds`` (so an idle process does
not hold on to an old picture forever).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from services.order.domain.routing import Capability

CAPABILITIES = {
    res.CAPABILITY_EXPRESS_SHIPPING: Capability.EXPRESS_SHIPPING,
    res.CAPABILITY_SAME_CITY_DELIVERY: Capability.SAME_CITY_DELIVERY,
    res.CAPABILITY_PICKUP: Capability.PICKUP,
    res.CAPABILITY_TRANSFER: Capability.TRANSFER,
}
PAGE_SIZE = 500


@dataclass(frozen=True)
class Site:
    location_id: str
    city: str
    latitude: float
    longitude: float
    capabilities: frozenset[Capability]


@dataclass(frozen=True)
class Directory:
    version: int
    sites: Mapping[str, Site]
    read_at: float


class LocationDirectory:
    def __init__(
        self,
        stub: inv_grpc.InventoryServiceAsyncStub,
        *,
        max_age_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = stub
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._by_channel: dict[str, Directory] = {}
        self._reading: dict[str, asyncio.Future[Directory]] = {}

    async def get(self, channel: str, *, newer_than: int = -1) -> Directory:
        """The channel's active locations; read again when older than the maximum age or
        when its version is not newer than ``newer_than`` (after a stale refusal)."""
        known = self._by_channel.get(channel)
        if (
            known is not None
            and known.version > newer_than
            and self._clock() - known.read_at < self.max_age_seconds
        ):
            return known
        reading = self._reading.get(channel)
        if reading is None:
            reading = asyncio.ensure_future(self._read(channel))
            self._reading[channel] = reading
            reading.add_done_callback(lambda _f: self._reading.pop(channel, None))
        found = await asyncio.shield(reading)
        self._by_channel[channel] = found
        return found

    def forget(self) -> None:
        self._by_channel.clear()

    async def _read(self, channel: str) -> Directory:
        # A consistent picture: the version before and after the pages must agree.
        for _ in range(5):
            sites: dict[str, Site] = {}
            token = ""
            first_version: int | None = None
            version = 0
            while True:
                page = await self._stub.ListLocations(
                    inv.ListLocationsRequest(channel=channel, page_size=PAGE_SIZE, page_token=token)
                )
                version = page.locations_version
                if first_version is None:
                    first_version = version
                for loc in page.locations:
                    if loc.active:
                        sites[loc.location_id] = Site(
                            loc.location_id,
                            loc.city,
                            loc.latitude,
                            loc.longitude,
                            frozenset(
                                CAPABILITIES[c] for c in loc.capabilities if c in CAPABILITIES
                            ),
                        )
                token = page.next_page_token
                if not token:
                    break
            if version == first_version:
                return Directory(version, sites, self._clock())
        return Directory(version, sites, self._clock())
