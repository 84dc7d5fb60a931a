"""What the order use cases share: the database, the inventory peer and the tunables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from libs.config import ConfigError, Settings
from libs.unit_of_work import UnitOfWorkFactory
from services.order.adapters.catalog_client import CatalogClient
from services.order.adapters.inventory_client import InventoryClient

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
        )


@dataclass
class OrderContext:
    uow: UnitOfWorkFactory
    inventory: InventoryClient
    catalog: CatalogClient
    config: OrderConfig
