"""Orders, lines, fulfilment orders, history, rules and returns in PostgreSQL.

Every status change is a compare-and-set on the expected status, so two actors (a worker
resuming an order, a cancel arriving) can never both move the same order, and goes through
the domain's transition table (state_machine.check_order_transition), so no code path can
make a move the order's life does not allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.order.adapters.tables import (
    fulfilments,
    order_history,
    order_lines,
    order_returns,
    orders,
    routing_rules,
)
from services.order.domain.state_machine import OrderStatus, check_order_transition


@dataclass(frozen=True)
class OrderRow:
    data: dict[str, Any]

    @property
    def order_id(self) -> str:
        return str(self.data["order_id"])

    @property
    def status(self) -> OrderStatus:
        return OrderStatus(self.data["status"])

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_order(self, values: dict[str, Any], lines: Sequence[dict[str, Any]]) -> bool:
        """Insert unless the channel order id is taken (False then); a concurrent duplicate
        waits for the first insert's transaction on the unique index."""
        inserted = await self.session.execute(
            insert(orders)
            .values(**values)
            .on_conflict_do_nothing(constraint="orders_channel_order_unique")
            .returning(orders.c.order_id)
        )
        if inserted.first() is None:
            return False
        await self.session.execute(order_lines.insert(), list(lines))
        return True

    async def by_channel_order(self, channel_id: str, channel_order_id: str) -> OrderRow | None:
        row = (
            (
                await self.session.execute(
                    sa.select(orders).where(
                        orders.c.channel_id == channel_id,
                        orders.c.channel_order_id == channel_order_id,
                    )
                )
            )
            .mappings()
            .first()
        )
        return OrderRow(dict(row)) if row else None

    async def get(self, order_id: str, *, lock: bool = False) -> OrderRow | None:
        query = sa.select(orders).where(orders.c.order_id == order_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return OrderRow(dict(row)) if row else None

    async def lines(self, order_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            sa.select(order_lines)
            .where(order_lines.c.order_id == order_id)
            .order_by(order_lines.c.position)
        )
        return [dict(r) for r in rows.mappings()]

    async def lines_for(self, order_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {i: [] for i in order_ids}
        if not order_ids:
            return out
        rows = await self.session.execute(
            sa.select(order_lines)
            .where(order_lines.c.order_id.in_(order_ids))
            .order_by(order_lines.c.order_id, order_lines.c.position)
        )
        for r in rows.mappings():
            out[r["order_id"]].append(dict(r))
        return out

    async def set_status(
        self,
        order_id: str,
        expected: OrderStatus | Sequence[OrderStatus],
        to: OrderStatus,
        note: str = "",
        **values: Any,
    ) -> bool:
        """Move the order from one of the expected statuses (compare-and-set; False when it
        is elsewhere by now) and record it. A move the order's life does not allow is
        FailedPrecondition, whatever the caller expected."""
        allowed = [expected] if isinstance(expected, OrderStatus) else list(expected)
        current = (
            await self.session.execute(
                sa.select(orders.c.status).where(orders.c.order_id == order_id).with_for_update()
            )
        ).scalar_one_or_none()
        if current is None or current not in {s.value for s in allowed}:
            return False
        check_order_transition(OrderStatus(current), to)
        await self.session.execute(
            orders.update()
            .where(orders.c.order_id == order_id)
            .values(status=to.value, updated_at=sa.func.now(), **values)
        )
        await self.session.execute(
            order_history.insert().values(
                order_id=order_id, from_status=current, to_status=to.value, note=note
            )
        )
        return True

    async def record(self, order_id: str, frm: OrderStatus, to: OrderStatus, note: str) -> None:
        await self.session.execute(
            order_history.insert().values(
                order_id=order_id, from_status=frm.value, to_status=to.value, note=note
            )
        )

    async def update(self, order_id: str, **values: Any) -> None:
        await self.session.execute(
            orders.update()
            .where(orders.c.order_id == order_id)
            .values(updated_at=sa.func.now(), **values)
        )

    async def history(self, order_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            sa.select(order_history)
            .where(order_history.c.order_id == order_id)
            .order_by(order_history.c.id)
        )
        return [dict(r) for r in rows.mappings()]

    # --- leases: one worker drives an order at a time -------------------------------------

    async def claim(self, order_id: str, lease_seconds: float) -> OrderRow | None:
        row = (
            (
                await self.session.execute(
                    orders.update()
                    .where(
                        orders.c.order_id == order_id,
                        sa.or_(
                            orders.c.lease_until.is_(None), orders.c.lease_until < sa.func.now()
                        ),
                    )
                    .values(
                        lease_until=sa.func.now()
                        + sa.text(f"interval '{float(lease_seconds)} seconds'")
                    )
                    .returning(*orders.c)
                )
            )
            .mappings()
            .first()
        )
        return OrderRow(dict(row)) if row else None

    async def unlease(self, order_id: str) -> None:
        await self.session.execute(
            orders.update().where(orders.c.order_id == order_id).values(lease_until=None)
        )

    async def due_for_work(
        self, statuses: Sequence[OrderStatus], idle_seconds: float, limit: int
    ) -> list[str]:
        """Orders left mid-step (a crash, a lost lease) that no one is driving now."""
        rows = await self.session.execute(
            sa.select(orders.c.order_id)
            .where(
                orders.c.status.in_([s.value for s in statuses]),
                sa.or_(orders.c.lease_until.is_(None), orders.c.lease_until < sa.func.now()),
                orders.c.updated_at
                < sa.func.now() - sa.text(f"interval '{float(idle_seconds)} seconds'"),
            )
            .order_by(orders.c.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [r[0] for r in rows]

    async def count_in(self, status: OrderStatus) -> int:
        return int(
            (
                await self.session.execute(
                    sa.select(sa.func.count())
                    .select_from(orders)
                    .where(orders.c.status == status.value)
                )
            ).scalar_one()
        )

    async def unfillable_to_retry(self, limit: int) -> list[str]:
        rows = await self.session.execute(
            sa.select(orders.c.order_id)
            .where(orders.c.status == OrderStatus.UNFILLABLE.value, orders.c.retry_routing)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [r[0] for r in rows]

    async def expired(
        self, status: OrderStatus, column: str, now: datetime, limit: int
    ) -> list[str]:
        col = orders.c[column]
        rows = await self.session.execute(
            sa.select(orders.c.order_id)
            .where(orders.c.status == status.value, col.is_not(None), col < now)
            .order_by(col)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [r[0] for r in rows]

    async def flag_unfillable_with_sku(self, sku_code: str) -> int:
        changed = await self.session.execute(
            orders.update()
            .where(
                orders.c.status == OrderStatus.UNFILLABLE.value,
                orders.c.retry_routing.is_(False),
                orders.c.order_id.in_(
                    sa.select(order_lines.c.order_id).where(order_lines.c.sku_code == sku_code)
                ),
            )
            .values(retry_routing=True)
        )
        return int(changed.rowcount or 0)  # type: ignore[attr-defined]

    # --- fulfilment orders -----------------------------------------------------------------

    async def add_fulfilments(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(fulfilments.insert(), list(rows))

    async def delete_planned(self, order_id: str) -> None:
        await self.session.execute(
            fulfilments.delete().where(
                fulfilments.c.order_id == order_id, fulfilments.c.status == "planned"
            )
        )

    async def fulfilments_of(self, order_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            sa.select(fulfilments)
            .where(fulfilments.c.order_id == order_id)
            .order_by(fulfilments.c.seq)
        )
        return [dict(r) for r in rows.mappings()]

    async def fulfilment_by_hold(self, reservation_key: str) -> dict[str, Any] | None:
        row = (
            (
                await self.session.execute(
                    sa.select(fulfilments).where(fulfilments.c.reservation_key == reservation_key)
                )
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None

    async def fulfilment(self, fulfilment_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        query = sa.select(fulfilments).where(fulfilments.c.fulfilment_id == fulfilment_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return dict(row) if row else None

    async def update_fulfilment(self, fulfilment_id: str, **values: Any) -> None:
        await self.session.execute(
            fulfilments.update()
            .where(fulfilments.c.fulfilment_id == fulfilment_id)
            .values(updated_at=sa.func.now(), **values)
        )

    async def update_fulfilments_of(self, order_id: str, **values: Any) -> None:
        await self.session.execute(
            fulfilments.update()
            .where(fulfilments.c.order_id == order_id)
            .values(updated_at=sa.func.now(), **values)
        )

    # --- routing rules ---------------------------------------------------------------------

    async def rules(self, channel_id: str, version: int = 0) -> dict[str, Any] | None:
        query = sa.select(routing_rules).where(routing_rules.c.channel_id == channel_id)
        if version:
            query = query.where(routing_rules.c.version == version)
        else:
            query = query.order_by(routing_rules.c.version.desc()).limit(1)
        row = (await self.session.execute(query)).mappings().first()
        return dict(row) if row else None

    async def add_rules(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        # Serialise versions per channel: a transaction-scoped advisory lock on the channel.
        await self.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:c))"), {"c": f"rules:{channel_id}"}
        )
        latest = await self.rules(channel_id)
        version = (latest["version"] if latest else 0) + 1
        row = (
            (
                await self.session.execute(
                    routing_rules.insert()
                    .values(channel_id=channel_id, version=version, body=body)
                    .returning(*routing_rules.c)
                )
            )
            .mappings()
            .one()
        )
        return dict(row)

    # --- returns ---------------------------------------------------------------------------

    async def add_return(self, values: dict[str, Any]) -> None:
        await self.session.execute(order_returns.insert().values(**values))

    async def returns_of(self, order_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            sa.select(order_returns)
            .where(order_returns.c.order_id == order_id)
            .order_by(order_returns.c.received_at)
        )
        return [dict(r) for r in rows.mappings()]

    async def unrestocked_returns(self, idle_seconds: float, limit: int) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            sa.select(order_returns)
            .where(
                order_returns.c.restocked.is_(False),
                order_returns.c.received_at
                < sa.func.now() - sa.text(f"interval '{float(idle_seconds)} seconds'"),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [dict(r) for r in rows.mappings()]

    async def mark_restocked(self, return_id: str) -> None:
        await self.session.execute(
            order_returns.update()
            .where(order_returns.c.return_id == return_id)
            .values(restocked=True)
        )

    async def add_returned(self, order_id: str, line_id: str, quantity: int, refund: int) -> None:
        await self.session.execute(
            order_lines.update()
            .where(order_lines.c.order_id == order_id, order_lines.c.line_id == line_id)
            .values(
                returned_quantity=order_lines.c.returned_quantity + quantity,
                refunded_minor=order_lines.c.refunded_minor + refund,
            )
        )

    # --- queries ---------------------------------------------------------------------------

    async def list_orders(
        self,
        *,
        channel_id: str,
        store_id: str,
        guide_staff_id: str,
        member_id: str,
        status: OrderStatus | None,
        created_from: datetime | None,
        created_to: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[OrderRow]:
        query = sa.select(orders)
        if channel_id:
            query = query.where(orders.c.channel_id == channel_id)
        if store_id:
            query = query.where(
                sa.or_(
                    orders.c.selling_store_id == store_id,
                    orders.c.pickup_store_id == store_id,
                    orders.c.order_id.in_(
                        sa.select(fulfilments.c.order_id).where(
                            fulfilments.c.location_id == store_id
                        )
                    ),
                )
            )
        if guide_staff_id:
            query = query.where(orders.c.selling_guide_staff_id == guide_staff_id)
        if member_id:
            query = query.where(orders.c.member_id == member_id)
        if status is not None:
            query = query.where(orders.c.status == status.value)
        if created_from is not None:
            query = query.where(orders.c.created_at >= created_from)
        if created_to is not None:
            query = query.where(orders.c.created_at < created_to)
        if after is not None:
            query = query.where(
                sa.tuple_(orders.c.created_at, orders.c.order_id) < sa.tuple_(*after)
            )
        query = query.order_by(orders.c.created_at.desc(), orders.c.order_id.desc()).limit(limit)
        rows = await self.session.execute(query)
        return [OrderRow(dict(r)) for r in rows.mappings()]
