"""Stock levels, the movement ledger, channel quotas and the stock queries (ATP, nearest).

Every change of a level is one UPDATE whose WHERE clause carries the rule that must hold
after it (e.g. "enough available"), so concurrent callers can never both pass a check that
only one of them may pass; no read-then-write races."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.inventory.adapters.location_repository import location_from_row
from services.inventory.adapters.tables import channel_quotas, stock_movements
from services.inventory.domain.geo import EARTH_RADIUS_M, BoundingBox
from services.inventory.domain.nearest_stock import NearbyCandidate
from services.inventory.domain.stock import (
    MAX_LEVEL,
    ChannelAvailability,
    Movement,
    MovementKind,
    StockLevel,
)

_RETURNING = (
    "s.location_id, s.sku_code, s.on_hand, s.reserved, s.safety_stock, s.in_transit, l.channels"
)


@dataclass(frozen=True)
class ChangedLevel:
    """A level after a change, with the channels of its location (whose ATP moved)."""

    level: StockLevel
    channels: tuple[str, ...]


def _level(m: Mapping[Any, Any]) -> StockLevel:
    return StockLevel(
        m["location_id"],
        m["sku_code"],
        m["on_hand"],
        m["reserved"],
        m["safety_stock"],
        m["in_transit"],
    )


def _changed(m: Mapping[Any, Any]) -> ChangedLevel:
    return ChangedLevel(_level(m), tuple(m["channels"]))


def _movement(m: Mapping[Any, Any]) -> Movement:
    return Movement(
        movement_id=m["movement_id"],
        location_id=m["location_id"],
        sku_code=m["sku_code"],
        kind=MovementKind(m["kind"]),
        quantity=m["quantity"],
        on_hand_after=m["on_hand_after"],
        reason=m["reason"],
        idempotency_key=m["idempotency_key"],
        reference=m["reference"],
        counted_quantity=m["counted_quantity"],
        created_at=m["created_at"],
    )


class StockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- levels -------------------------------------------------------------------------

    async def ensure(self, location_id: str, sku_code: str) -> None:
        """Create the level at zero (with the location's default safety stock) if missing."""
        await self.session.execute(
            sa.text(
                "INSERT INTO stock_levels (location_id, sku_code, safety_stock) "
                "SELECT location_id, :sku, default_safety_stock FROM locations "
                "WHERE location_id = :loc ON CONFLICT DO NOTHING"
            ),
            {"loc": location_id, "sku": sku_code},
        )

    async def lock(self, location_id: str, sku_code: str) -> ChangedLevel | None:
        row = (
            await self.session.execute(
                sa.text(
                    f"SELECT {_RETURNING} FROM stock_levels s "
                    "JOIN locations l ON l.location_id = s.location_id "
                    "WHERE s.location_id = :loc AND s.sku_code = :sku FOR UPDATE OF s"
                ),
                {"loc": location_id, "sku": sku_code},
            )
        ).first()
        return None if row is None else _changed(row._mapping)

    async def get(self, location_id: str, sku_code: str) -> StockLevel | None:
        row = (
            await self.session.execute(
                sa.text(
                    "SELECT location_id, sku_code, on_hand, reserved, safety_stock, in_transit "
                    "FROM stock_levels WHERE location_id = :loc AND sku_code = :sku"
                ),
                {"loc": location_id, "sku": sku_code},
            )
        ).first()
        return None if row is None else _level(row._mapping)

    async def _update(
        self, location_id: str, sku_code: str, set_sql: str, guard_sql: str, **params: int
    ) -> ChangedLevel | None:
        row = (
            await self.session.execute(
                sa.text(
                    f"UPDATE stock_levels s SET {set_sql}, updated_at = now() FROM locations l "
                    "WHERE l.location_id = s.location_id AND s.location_id = :loc "
                    f"AND s.sku_code = :sku {guard_sql} RETURNING {_RETURNING}"
                ),
                {"loc": location_id, "sku": sku_code, **params},
            )
        ).first()
        return None if row is None else _changed(row._mapping)

    async def set_on_hand(self, location_id: str, sku_code: str, on_hand: int) -> ChangedLevel:
        changed = await self._update(location_id, sku_code, "on_hand = :v", "", v=on_hand)
        assert changed is not None, "set_on_hand on a level that was locked"
        return changed

    async def reserve_if_available(
        self, location_id: str, sku_code: str, quantity: int
    ) -> ChangedLevel | None:
        """Hold units only if that many are available to promise right now; None if not."""
        return await self._update(
            location_id,
            sku_code,
            "reserved = s.reserved + :q",
            "AND s.on_hand - s.reserved - s.safety_stock >= :q",
            q=quantity,
        )

    async def release(self, location_id: str, sku_code: str, quantity: int) -> ChangedLevel | None:
        return await self._update(
            location_id, sku_code, "reserved = s.reserved - :q", "AND s.reserved >= :q", q=quantity
        )

    async def consume_reserved(
        self, location_id: str, sku_code: str, quantity: int
    ) -> ChangedLevel | None:
        """Reserved units leave: on hand and reserved both go down."""
        return await self._update(
            location_id,
            sku_code,
            "on_hand = s.on_hand - :q, reserved = s.reserved - :q",
            "AND s.reserved >= :q AND s.on_hand >= :q",
            q=quantity,
        )

    async def take_unreserved(
        self, location_id: str, sku_code: str, quantity: int
    ) -> ChangedLevel | None:
        """Units leave that no order holds (a transfer ships only free stock)."""
        return await self._update(
            location_id,
            sku_code,
            "on_hand = s.on_hand - :q",
            "AND s.on_hand - s.reserved >= :q",
            q=quantity,
        )

    async def add_in_transit(
        self, location_id: str, sku_code: str, quantity: int
    ) -> ChangedLevel | None:
        """More on its way here; None if in transit would pass MAX_LEVEL."""
        return await self._update(
            location_id,
            sku_code,
            "in_transit = s.in_transit + :q",
            "AND s.in_transit + :q <= :max",
            q=quantity,
            max=MAX_LEVEL,
        )

    async def arrive(
        self, location_id: str, sku_code: str, shipped: int, received: int
    ) -> ChangedLevel | None:
        """What was in transit lands: in transit down by what left, on hand up by what came
        (None if less is in transit or on hand would pass MAX_LEVEL)."""
        return await self._update(
            location_id,
            sku_code,
            "in_transit = s.in_transit - :shipped, on_hand = s.on_hand + :received",
            "AND s.in_transit >= :shipped AND s.on_hand + :received <= :max",
            shipped=shipped,
            received=received,
            max=MAX_LEVEL,
        )

    async def set_safety(self, location_id: str, sku_code: str, safety: int) -> ChangedLevel:
        changed = await self._update(location_id, sku_code, "safety_stock = :v", "", v=safety)
        assert changed is not None, "set_safety on a level that was ensured"
        return changed

    # --- ledger -------------------------------------------------------------------------

    async def add_movement(
        self,
        *,
        location_id: str,
        sku_code: str,
        kind: MovementKind,
        quantity: int,
        on_hand_after: int,
        reason: str,
        idempotency_key: str,
        reference: str = "",
        counted_quantity: int | None = None,
    ) -> Movement:
        row = (
            await self.session.execute(
                stock_movements.insert()
                .values(
                    location_id=location_id,
                    sku_code=sku_code,
                    kind=kind.value,
                    quantity=quantity,
                    on_hand_after=on_hand_after,
                    reason=reason,
                    idempotency_key=idempotency_key,
                    reference=reference,
                    counted_quantity=counted_quantity,
                )
                .returning(*stock_movements.c)
            )
        ).one()
        return _movement(row._mapping)

    async def movement_by_key(self, idempotency_key: str) -> Movement | None:
        row = (
            await self.session.execute(
                sa.select(stock_movements).where(
                    stock_movements.c.idempotency_key == idempotency_key
                )
            )
        ).first()
        return None if row is None else _movement(row._mapping)

    async def movements(
        self, location_id: str, sku_code: str, after_id: int, limit: int
    ) -> list[Movement]:
        rows = await self.session.execute(
            sa.select(stock_movements)
            .where(
                stock_movements.c.location_id == location_id,
                stock_movements.c.sku_code == sku_code,
                stock_movements.c.movement_id > after_id,
            )
            .order_by(stock_movements.c.movement_id)
            .limit(limit)
        )
        return [_movement(r._mapping) for r in rows]

    async def ledger_sum(self, location_id: str, sku_code: str) -> int:
        return int(
            (
                await self.session.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(stock_movements.c.quantity), 0)).where(
                        stock_movements.c.location_id == location_id,
                        stock_movements.c.sku_code == sku_code,
                    )
                )
            ).scalar_one()
        )

    # --- channel quotas -----------------------------------------------------------------

    async def quotas(self, channel: str, sku_codes: Sequence[str]) -> dict[str, int]:
        rows = await self.session.execute(
            sa.select(channel_quotas.c.sku_code, channel_quotas.c.quota).where(
                channel_quotas.c.channel == channel,
                channel_quotas.c.sku_code.in_(list(sku_codes)),
            )
        )
        return {r.sku_code: r.quota for r in rows}

    async def set_quota(self, channel: str, sku_code: str, quota: int | None) -> None:
        if quota is None:
            await self.session.execute(
                channel_quotas.delete().where(
                    channel_quotas.c.channel == channel, channel_quotas.c.sku_code == sku_code
                )
            )
            return
        await self.session.execute(
            sa.text(
                "INSERT INTO channel_quotas (channel, sku_code, quota) VALUES (:c, :s, :q) "
                "ON CONFLICT (channel, sku_code) DO UPDATE SET quota = excluded.quota"
            ),
            {"c": channel, "s": sku_code, "q": quota},
        )

    # --- queries ------------------------------------------------------------------------

    async def eligible_levels(self, channel: str, sku_codes: Sequence[str]) -> list[StockLevel]:
        """Each active location's level of these SKUs, for locations serving the channel (all
        active locations when channel is empty)."""
        rows = await self.session.execute(
            sa.text(
                "SELECT s.location_id, s.sku_code, s.on_hand, s.reserved, s.safety_stock, "
                "s.in_transit FROM stock_levels s "
                "JOIN locations l ON l.location_id = s.location_id "
                "WHERE s.sku_code = ANY(:skus) AND l.active "
                "AND (:channel = '' OR :channel = ANY(l.channels)) "
                "ORDER BY s.sku_code, s.location_id"
            ),
            {"skus": list(sku_codes), "channel": channel},
        )
        return [_level(r._mapping) for r in rows]

    async def eligible_totals(
        self, channel: str, sku_codes: Sequence[str]
    ) -> dict[str, ChannelAvailability]:
        """The same sums as domain.stock.channel_availability, computed in SQL."""
        rows = await self.session.execute(
            sa.text(
                "SELECT s.sku_code, "
                "sum(greatest(s.on_hand - s.reserved - s.safety_stock, 0)) AS available, "
                "sum(s.on_hand) AS on_hand, sum(s.reserved) AS reserved, "
                "sum(s.safety_stock) AS safety_stock, sum(s.in_transit) AS in_transit "
                "FROM stock_levels s JOIN locations l ON l.location_id = s.location_id "
                "WHERE s.sku_code = ANY(:skus) AND l.active "
                "AND (:channel = '' OR :channel = ANY(l.channels)) GROUP BY s.sku_code"
            ),
            {"skus": list(sku_codes), "channel": channel},
        )
        return {
            r.sku_code: ChannelAvailability(
                r.sku_code,
                int(r.available),
                int(r.on_hand),
                int(r.reserved),
                int(r.safety_stock),
                int(r.in_transit),
                None,
            )
            for r in rows
        }

    async def nearby(
        self,
        *,
        latitude: float,
        longitude: float,
        radius_m: float,
        box: BoundingBox,
        sku_codes: Sequence[str],
        capability: str,
        channel: str,
    ) -> list[NearbyCandidate]:
        """Active locations within the radius holding any of the SKUs available, nearest
        first. The box lets the (latitude, longitude) index cut the candidates before the
        great-circle distance is computed."""
        lng_filter = (
            "(l.longitude >= :min_lng OR l.longitude <= :max_lng)"
            if box.wraps
            else "l.longitude BETWEEN :min_lng AND :max_lng"
        )
        rows = await self.session.execute(
            sa.text(
                "WITH candidates AS ("
                " SELECT l.*, 2 * :earth * asin(least(1, sqrt("
                "  power(sin(radians(l.latitude - :lat) / 2), 2)"
                "  + cos(radians(:lat)) * cos(radians(l.latitude))"
                "  * power(sin(radians(l.longitude - :lng) / 2), 2)))) AS distance_m"
                " FROM locations l"
                " WHERE l.active AND l.latitude BETWEEN :min_lat AND :max_lat"
                f" AND {lng_filter}"
                " AND (:capability = '' OR :capability = ANY(l.capabilities))"
                " AND (:channel = '' OR :channel = ANY(l.channels))"
                ") "
                "SELECT c.*, s.sku_code AS stock_sku,"
                " s.on_hand - s.reserved - s.safety_stock AS stock_available "
                "FROM candidates c JOIN stock_levels s ON s.location_id = c.location_id "
                "WHERE c.distance_m <= :radius AND s.sku_code = ANY(:skus)"
                " AND s.on_hand - s.reserved - s.safety_stock > 0 "
                "ORDER BY c.distance_m, c.location_id"
            ),
            {
                "earth": EARTH_RADIUS_M,
                "lat": latitude,
                "lng": longitude,
                "radius": radius_m,
                "min_lat": box.min_lat,
                "max_lat": box.max_lat,
                "min_lng": box.min_lng,
                "max_lng": box.max_lng,
                "capability": capability,
                "channel": channel,
                "skus": list(sku_codes),
            },
        )
        found: dict[str, NearbyCandidate] = {}
        for r in rows:
            m = r._mapping
            candidate = found.get(m["location_id"])
            if candidate is None:
                candidate = NearbyCandidate(location_from_row(m), float(m["distance_m"]), {})
                found[m["location_id"]] = candidate
            candidate.available[m["stock_sku"]] = int(m["stock_available"])
        return list(found.values())
