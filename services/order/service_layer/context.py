"""What the order use cases share: the database, the peers, the tunables and the caches."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from libs.config import ConfigError, Settings
from libs.pg import Pg
from services.order.adapters import order_store
from services.order.adapters.catalog_client import CatalogClient
from services.order.adapters.inventory_client import InventoryClient
from services.order.domain import routing
from services.order.service_layer.batches import OrderBatches
from services.order.service_layer.unit_of_work import OrderUnitOfWork, transaction

DEFAULT_RULES: dict[str, Any] = {
    "same_city_first": True,
    "location_priority": [],
    "excluded_location_ids": [],
    "payment_timeout_seconds": 1800,
    "unfillable_timeout_seconds": 86400,
    "distance_tolerance_meters": 0,
}


@dataclass(frozen=True)
class OrderConfig:
    # How long one worker owns an order it is driving; after a crash another takes over
    # once this runs out.
    lease_seconds: float = 30.0
    # How often the recovery/sweeper task looks for work.
    recovery_interval_seconds: float = 2.0
    # An in-flight order untouched this long is resumed by the recovery task.
    recovery_idle_seconds: float = 5.0
    # A hold refused this many times (stock went between routing and holding) parks the
    # order as unfillable instead of re-routing again.
    max_routing_attempts: int = 3
    # How long a channel's routing rules are kept in memory (SetRoutingRules on this
    # process takes effect at once; on another replica within this time).
    rules_cache_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderConfig:
        extra = settings.extra

        def number(name: str, default: float) -> float:
            raw = extra.get(f"OMNI_ORDER_{name}")
            if not raw:
                return default
            try:
                return float(raw)
            except ValueError as exc:
                raise ConfigError(f"OMNI_ORDER_{name} must be a number, got {raw!r}") from exc

        return cls(
            lease_seconds=number("LEASE_SECONDS", cls.lease_seconds),
            recovery_interval_seconds=number(
                "RECOVERY_INTERVAL_SECONDS", cls.recovery_interval_seconds
            ),
            recovery_idle_seconds=number("RECOVERY_IDLE_SECONDS", cls.recovery_idle_seconds),
            max_routing_attempts=int(number("MAX_ROUTING_ATTEMPTS", cls.max_routing_attempts)),
            rules_cache_seconds=number("RULES_CACHE_SECONDS", cls.rules_cache_seconds),
        )


@dataclass(frozen=True)
class ChannelRules:
    version: int
    body: dict[str, Any]

    @property
    def routing(self) -> routing.Rules:
        body = self.body
        return routing.Rules(
            version=self.version,
            same_city_first=bool(body["same_city_first"]),
            location_priority=tuple(body["location_priority"]),
            excluded_location_ids=frozenset(body["excluded_location_ids"]),
            distance_tolerance_meters=int(body["distance_tolerance_meters"]),
        )


class RulesCache:
    """A channel's latest routing rules, kept briefly (read on every capture)."""

    def __init__(
        self, pg: Pg, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pg = pg
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._known: dict[str, tuple[ChannelRules, float]] = {}

    async def get(self, channel_id: str) -> ChannelRules:
        known = self._known.get(channel_id)
        if known is not None and self._clock() - known[1] < self.ttl_seconds:
            return known[0]
        async with self._pg.connection() as conn:
            found = await order_store.rules(conn, channel_id)
        rules = (
            ChannelRules(0, dict(DEFAULT_RULES))
            if found is None
            else ChannelRules(int(found["version"]), {**DEFAULT_RULES, **found["body"]})
        )
        self._known[channel_id] = (rules, self._clock())
        return rules

    def forget(self, channel_id: str) -> None:
        self._known.pop(channel_id, None)


@dataclass
class OrderContext:
    pg: Pg
    inventory: InventoryClient
    catalog: CatalogClient
    config: OrderConfig
    rules: RulesCache = field(init=False)
    batches: OrderBatches = field(init=False)

    def __post_init__(self) -> None:
        self.rules = RulesCache(self.pg, self.config.rules_cache_seconds)
        self.batches = OrderBatches(self.pg)

    async def close(self) -> None:
        await self.batches.close()
        await self.inventory.close()
        await self.catalog.close()

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[OrderUnitOfWork]:
        async with transaction(self.pg) as uow:
            yield uow
