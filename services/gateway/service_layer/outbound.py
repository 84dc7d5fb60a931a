"""Outbound sync: platform events queue pushes per channel; a pusher delivers them to each
channel's endpoint until acknowledged (2xx), with exponential backoff and a dead-letter
list; reconciliation repairs a channel whose view of stock differs from ours.

Coalescing: at most one *pending* push per (channel, kind, subject) — a burst of stock
changes on one SKU bumps that row's version instead of adding rows, and the stock figure is
read from inventory when the push is sent, so the channel gets the latest value once. A
push acknowledged for an older version than the row now has stays due and goes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db import Database
from libs.errors import FailedPrecondition, NotFound
from libs.telemetry import context_from_mapping, inject_context
from services.gateway import metrics
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.tables import channels, outbound_pushes
from services.gateway.connectors import registry
from services.gateway.domain import pushes as rules

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

KINDS = ("stock", "order_status", "price", "listing")


@dataclass(frozen=True)
class PushRow:
    push_id: int
    channel_id: str
    kind: str
    subject: str
    facts: dict[str, Any]
    version: int
    status: str
    attempts: int
    last_error: str
    event_time: datetime
    next_attempt_at: datetime
    trace_context: dict[str, str]


@dataclass(frozen=True)
class PushSettings:
    backoff_seconds: float = rules.BASE_DELAY_SECONDS
    max_attempts: int = rules.MAX_ATTEMPTS
    batch: int = 50
    lease_seconds: float = 30.0
    timeout_seconds: float = 5.0
    poll_seconds: float = 0.2
    lag_refresh_seconds: float = 5.0


def _row(row: sa.Row[tuple[object, ...]]) -> PushRow:
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


async def enqueue(
    session: AsyncSession,
    channel_ids: Sequence[str],
    kind: str,
    subject: str,
    facts: dict[str, Any],
    event_time: datetime,
) -> None:
    """Queue (or coalesce into the pending) push for each channel. The oldest unacknowledged
    event time is kept, so lag counts from the first change the channel has not seen; so is
    that first event's trace context (the push becomes part of its trace)."""
    if not channel_ids:
        return
    trace_context = inject_context()
    statement = insert(outbound_pushes).values(
        [
            {
                "channel_id": c,
                "kind": kind,
                "subject": subject,
                "facts": facts,
                "event_time": event_time,
                "trace_context": trace_context,
            }
            for c in sorted(set(channel_ids))
        ]
    )
    await session.execute(
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


async def pushing_channels(
    session: AsyncSession, *, stock_channels: Sequence[str] = (), channel_ids: Sequence[str] = ()
) -> list[str]:
    """Active channels with an endpoint, chosen by their stock channel or by id."""
    query = sa.select(channels.c.channel_id).where(
        channels.c.status == "active", channels.c.push_endpoint != ""
    )
    if stock_channels:
        query = query.where(channels.c.stock_channel.in_(list(stock_channels)))
    elif channel_ids:
        query = query.where(channels.c.channel_id.in_(list(channel_ids)))
    return list((await session.execute(query)).scalars())


async def claim_due(db: Database, settings: PushSettings) -> list[PushRow]:
    """Lease due pushes; SKIP LOCKED lets several replicas share the queue without waiting,
    and the lease keeps a row from being sent twice at once while the HTTP call runs outside
    any transaction."""
    async with db.session() as session, session.begin():
        now = sa.func.now()
        due = (
            sa.select(outbound_pushes.c.push_id)
            .where(
                outbound_pushes.c.status == "pending",
                outbound_pushes.c.next_attempt_at <= now,
                sa.or_(
                    outbound_pushes.c.lease_until.is_(None), outbound_pushes.c.lease_until < now
                ),
            )
            .order_by(outbound_pushes.c.next_attempt_at)
            .limit(settings.batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await session.execute(
            outbound_pushes.update()
            .where(outbound_pushes.c.push_id.in_(due))
            .values(lease_until=now + timedelta(seconds=settings.lease_seconds))
            .returning(*outbound_pushes.c)
        )
        return [_row(r) for r in rows]


async def _body(peers: Peers, channel: dict[str, Any], row: PushRow) -> dict[str, Any]:
    """What the channel receives, in its connector's shape; stock and prices are read now."""
    connector = registry.connector_for(channel["connector"])
    data: dict[str, Any]
    if row.kind == "stock":
        sku = row.subject
        availability = await peers.availability(channel["stock_channel"], [sku])
        available = int(availability[sku].available) if sku in availability else 0
        external = ""
        if connector.maps_skus:
            external = (await peers.external_ids_for(row.channel_id, [sku])).get(sku, "")
            if not external:
                raise UnmappedSku(sku)
        data = connector.stock_message(sku, external, available)
    elif row.kind == "price":
        price = await peers.price(row.channel_id, row.subject)
        data = {
            "type": "price",
            "sku_code": row.subject,
            "price_minor": price.price.amount_minor,
            "currency": price.price.currency_code,
            "sellable": price.sellable,
        }
    else:
        data = dict(row.facts)
    return {
        "push_id": row.push_id,
        "version": row.version,
        "kind": row.kind,
        "channel_id": row.channel_id,
        "subject": row.subject,
        "event_time": row.event_time.isoformat(),
        "data": data,
    }


class UnmappedSku(Exception):
    """A marketplace channel cannot be told about a SKU it has no id for."""


async def _traced_deliver(
    client: httpx.AsyncClient, peers: Peers, channel: dict[str, Any] | None, row: PushRow
) -> str | None:
    """_deliver in a span that continues the trace of the event that queued the push."""
    with tracer.start_as_current_span(
        f"push {row.kind}",
        context=context_from_mapping(row.trace_context),
        kind=SpanKind.CLIENT,
        attributes={
            "omni.push.id": row.push_id,
            "omni.push.kind": row.kind,
            "omni.push.attempt": row.attempts + 1,
            "omni.channel.id": row.channel_id,
        },
    ) as span:
        error = await _deliver(client, peers, channel, row)
        if error is not None:
            span.set_status(trace.StatusCode.ERROR, error[:200])
        return error


async def _deliver(
    client: httpx.AsyncClient, peers: Peers, channel: dict[str, Any] | None, row: PushRow
) -> str | None:
    """None when acknowledged, else why not."""
    if channel is None or not channel["push_endpoint"] or channel["status"] != "active":
        return "channel has no active push endpoint"
    try:
        body = await _body(peers, channel, row)
    except UnmappedSku as exc:
        return f"SKU {exc} has no mapping on this channel"
    except grpc.aio.AioRpcError as exc:
        return f"peer {exc.code().name}: {exc.details()}"
    try:
        response = await client.post(
            channel["push_endpoint"],
            json=body,
            # The trace context too, so a channel that traces can join the push's trace.
            headers={"X-Omni-Push-Id": str(row.push_id), **inject_context()},
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


async def record(db: Database, row: PushRow, error: str | None, settings: PushSettings) -> None:
    now = datetime.now(UTC)
    async with db.session() as session, session.begin():
        if error is None:
            # Only the version that was sent is done; a change coalesced meanwhile re-sends.
            done = await session.execute(
                outbound_pushes.update()
                .where(
                    outbound_pushes.c.push_id == row.push_id,
                    outbound_pushes.c.version == row.version,
                )
                .values(status="delivered", delivered_at=now, lease_until=None, last_error="")
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                await session.execute(
                    outbound_pushes.update()
                    .where(outbound_pushes.c.push_id == row.push_id)
                    .values(lease_until=None, next_attempt_at=now)
                )
            metrics.PUSHES.labels(kind=row.kind, outcome="acknowledged").inc()
            metrics.SYNC_LAG.labels(kind=row.kind, channel=row.channel_id).observe(
                rules.lag_seconds(row.event_time, now)
            )
            return
        attempts = row.attempts + 1
        retry_at = rules.after_failure(
            attempts, now, settings.max_attempts, settings.backoff_seconds
        )
        values: dict[str, object] = {
            "attempts": attempts,
            "last_error": error[:1000],
            "lease_until": None,
        }
        if retry_at is None:
            values["status"] = "dead"
        else:
            values["next_attempt_at"] = retry_at
        await session.execute(
            outbound_pushes.update()
            .where(outbound_pushes.c.push_id == row.push_id)
            .values(**values)
        )
    metrics.PUSHES.labels(kind=row.kind, outcome="dead" if retry_at is None else "failed").inc()
    log.warning(
        "push not acknowledged",
        extra={
            "push_id": row.push_id,
            "channel_id": row.channel_id,
            "attempts": attempts,
            "error": error[:200],
        },
    )


async def push_once(
    db: Database, peers: Peers, client: httpx.AsyncClient, settings: PushSettings
) -> int:
    """Deliver one batch of due pushes; returns how many were attempted."""
    rows = await claim_due(db, settings)
    if not rows:
        return 0
    async with db.session() as session:
        found = await session.execute(
            sa.select(channels).where(channels.c.channel_id.in_({r.channel_id for r in rows}))
        )
        by_id = {r.channel_id: dict(r._mapping) for r in found}
    errors = await asyncio.gather(
        *(_traced_deliver(client, peers, by_id.get(r.channel_id), r) for r in rows)
    )
    for row, error in zip(rows, errors, strict=True):
        await record(db, row, error, settings)
    return len(rows)


async def run_pusher(db: Database, peers: Peers, settings: PushSettings) -> None:
    """The background task of every replica: poll for due pushes, deliver, repeat."""
    async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
        while True:
            try:
                if await push_once(db, peers, client, settings):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pusher round failed")
            await asyncio.sleep(settings.poll_seconds)


async def oldest_unacknowledged(session: AsyncSession) -> dict[str, datetime]:
    """Per channel, the event time of the oldest change it has not acknowledged: a pending
    push, or a dead one that no later delivered push of the same subject superseded. Every
    active pushing channel is listed, with None as the time when it is up to date."""
    pushed = outbound_pushes.alias("p")
    later = outbound_pushes.alias("later")
    superseded = (
        sa.exists()
        .where(
            later.c.channel_id == pushed.c.channel_id,
            later.c.kind == pushed.c.kind,
            later.c.subject == pushed.c.subject,
            later.c.status == "delivered",
            later.c.push_id > pushed.c.push_id,
        )
        .correlate(pushed)
    )
    rows = await session.execute(
        sa.select(pushed.c.channel_id, sa.func.min(pushed.c.event_time))
        .where(
            pushed.c.status.in_(("pending", "dead")),
            sa.or_(pushed.c.status == "pending", ~superseded),
        )
        .group_by(pushed.c.channel_id)
    )
    return {channel_id: oldest for channel_id, oldest in rows}


async def refresh_lag_gauge(db: Database, now: datetime | None = None) -> dict[str, float]:
    """Set omni_gateway_oldest_pending_push_age_seconds for every channel (0 when up to
    date); a channel no longer pushing loses its series."""
    async with db.session() as session:
        oldest = await oldest_unacknowledged(session)
        active = await pushing_channels(session)
    moment = now or datetime.now(UTC)
    ages = {c: 0.0 for c in active}
    ages.update({c: rules.lag_seconds(t, moment) for c, t in oldest.items()})
    for channel_id, age in ages.items():
        metrics.OLDEST_PENDING_PUSH_AGE.labels(channel=channel_id).set(age)
    for channel_id in _GAUGED - ages.keys():
        with contextlib.suppress(KeyError):
            metrics.OLDEST_PENDING_PUSH_AGE.remove(channel_id)
    _GAUGED.clear()
    _GAUGED.update(ages)
    return ages


# Channels this process exports the gauge for.
_GAUGED: set[str] = set()


async def run_lag_monitor(db: Database, interval_seconds: float = 5.0) -> None:
    """Background task: keep the oldest-pending-push gauge current, so a channel that is
    down shows its lag growing even though none of its pushes is acknowledged."""
    while True:
        try:
            await refresh_lag_gauge(db)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push lag refresh failed")
        await asyncio.sleep(interval_seconds)


async def list_dead(
    session: AsyncSession, channel_id: str, after: int, limit: int
) -> list[PushRow]:
    query = sa.select(outbound_pushes).where(
        outbound_pushes.c.status == "dead", outbound_pushes.c.push_id > after
    )
    if channel_id:
        query = query.where(outbound_pushes.c.channel_id == channel_id)
    rows = await session.execute(query.order_by(outbound_pushes.c.push_id).limit(limit))
    return [_row(r) for r in rows]


async def retry_push(session: AsyncSession, push_id: int) -> PushRow:
    """A dead push goes back to the queue with a fresh attempt budget; if a newer push for
    the same subject is already pending, that one carries the change and this is refused."""
    row = (
        await session.execute(
            sa.select(outbound_pushes).where(outbound_pushes.c.push_id == push_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"push {push_id} not found")
    push = _row(row)
    if push.status == "pending":
        return push
    if push.status != "dead":
        raise FailedPrecondition(f"push {push_id} is {push.status}, not dead")
    newer = (
        await session.execute(
            sa.select(outbound_pushes.c.push_id).where(
                outbound_pushes.c.channel_id == push.channel_id,
                outbound_pushes.c.kind == push.kind,
                outbound_pushes.c.subject == push.subject,
                outbound_pushes.c.status == "pending",
            )
        )
    ).first()
    if newer is not None:
        raise FailedPrecondition(
            f"push {newer.push_id} for the same {push.kind} is already pending"
        )
    updated = (
        await session.execute(
            outbound_pushes.update()
            .where(outbound_pushes.c.push_id == push_id)
            .values(status="pending", attempts=0, next_attempt_at=sa.func.now(), lease_until=None)
            .returning(*outbound_pushes.c)
        )
    ).one()
    return _row(updated)


@dataclass(frozen=True)
class Reconciliation:
    repaired: list[tuple[str, int]]
    matched: int


async def reconcile_stock(
    session: AsyncSession, peers: Peers, channel_id: str, reported: Sequence[tuple[str, int]]
) -> Reconciliation:
    """Compare what the channel shows per SKU with our channel ATP; each difference queues a
    stock push (coalesced with any pending one), which sends our figure."""
    found = (
        await session.execute(sa.select(channels).where(channels.c.channel_id == channel_id))
    ).first()
    if found is None:
        raise NotFound(f"channel {channel_id} not found")
    ours = await peers.availability(found.stock_channel, [sku for sku, _ in reported])
    repaired: list[tuple[str, int]] = []
    for sku, theirs in reported:
        actual = int(ours[sku].available) if sku in ours else 0
        if actual != theirs:
            repaired.append((sku, actual))
    now = datetime.now(UTC)
    for sku, _ in repaired:
        await enqueue(
            session, [channel_id], "stock", sku, {"sku_code": sku, "reason": "reconcile"}, now
        )
    return Reconciliation(repaired, len(reported) - len(repaired))
