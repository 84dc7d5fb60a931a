"""The outbound push queue inside a UnitOfWork (SQLAlchemy session): for the work that must
share a transaction with other session work — operators' RetryPush and ReconcileStock (with
their idempotency rows) and order-status pushes queued with the channel order's status."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.adapters.tables import channels, outbound_pushes
from services.gateway.domain.pushes import PushRequest, PushRow


def _push_row(row: sa.Row[tuple[object, ...]]) -> PushRow:
    m = row._mapping
    return PushRow(
        m["push_id"],
        m["channel_id"],
        m["kind"],
        m["subject"],
        dict(m["facts"]),
        m["version"],
        m["status"],
        m["attempts"],
        m["last_error"],
        m["event_time"],
        m["next_attempt_at"],
        dict(m["trace_context"] or {}),
    )


class PushRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def channels_by_stock(self, stock_channels: Collection[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        if stock_channels:
            rows = await self.session.execute(
                sa.select(channels.c.stock_channel, channels.c.channel_id)
                .where(
                    channels.c.status == "active",
                    channels.c.push_endpoint != "",
                    channels.c.stock_channel.in_(sorted(set(stock_channels))),
                )
                .order_by(channels.c.channel_id)
            )
            for stock_channel, channel_id in rows:
                found.setdefault(stock_channel, []).append(channel_id)
        return found

    async def pushing_channels(self, channel_ids: Collection[str] | None = None) -> list[str]:
        query = sa.select(channels.c.channel_id).where(
            channels.c.status == "active", channels.c.push_endpoint != ""
        )
        if channel_ids is not None:
            query = query.where(channels.c.channel_id.in_(sorted(set(channel_ids))))
        return list((await self.session.execute(query.order_by(channels.c.channel_id))).scalars())

    async def enqueue(self, requests: Sequence[PushRequest]) -> None:
        """As PgPushStore.enqueue: one request per (channel, kind, subject)."""
        if not requests:
            return
        statement = insert(outbound_pushes).values(
            [
                {
                    "channel_id": r.channel_id,
                    "kind": r.kind,
                    "subject": r.subject,
                    "facts": r.facts,
                    "event_time": r.event_time,
                    "trace_context": dict(r.trace_context),
                }
                for r in requests
            ]
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["channel_id", "kind", "subject"],
                # A literal predicate: a bound parameter cannot be matched to the partial index.
                index_where=sa.text("status = 'pending'"),
                set_={
                    "version": outbound_pushes.c.version + 1,
                    "facts": statement.excluded.facts,
                    "event_time": sa.func.least(
                        outbound_pushes.c.event_time, statement.excluded.event_time
                    ),
                },
            )
        )

    async def channel(self, channel_id: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                sa.select(channels).where(channels.c.channel_id == channel_id)
            )
        ).first()
        return dict(row._mapping) if row else None

    async def dead(self, channel_id: str, after: int, limit: int) -> list[PushRow]:
        query = sa.select(outbound_pushes).where(
            outbound_pushes.c.status == "dead", outbound_pushes.c.push_id > after
        )
        if channel_id:
            query = query.where(outbound_pushes.c.channel_id == channel_id)
        rows = await self.session.execute(query.order_by(outbound_pushes.c.push_id).limit(limit))
        return [_push_row(r) for r in rows]

    async def lock(self, push_id: int) -> PushRow | None:
        row = (
            await self.session.execute(
                sa.select(outbound_pushes)
                .where(outbound_pushes.c.push_id == push_id)
                .with_for_update()
            )
        ).first()
        return _push_row(row) if row else None

    async def pending_for(self, channel_id: str, kind: str, subject: str) -> int | None:
        """The id of the pending push of (channel, kind, subject), if any."""
        return (
            await self.session.execute(
                sa.select(outbound_pushes.c.push_id).where(
                    outbound_pushes.c.channel_id == channel_id,
                    outbound_pushes.c.kind == kind,
                    outbound_pushes.c.subject == subject,
                    outbound_pushes.c.status == "pending",
                )
            )
        ).scalar_one_or_none()

    async def requeue(self, push_id: int) -> PushRow:
        """Pending again with a fresh attempt budget, due now."""
        row = (
            await self.session.execute(
                outbound_pushes.update()
                .where(outbound_pushes.c.push_id == push_id)
                .values(
                    status="pending", attempts=0, next_attempt_at=sa.func.now(), lease_until=None
                )
                .returning(*outbound_pushes.c)
            )
        ).one()
        return _push_row(row)
