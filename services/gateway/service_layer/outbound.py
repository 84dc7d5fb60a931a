"""Outbound sync: platform events queue pushes per channel; a pusher delivers them to each
channel's endpoint until acknowledged (2xx), with exponential backoff and a dead-letter
list; reconciliation repairs a channel whose view of stock differs from ours.

Coalescing: at most one *pending* push per (channel, kind, subject) — a burst of stock
changes on one SKU bumps that row's version instead of adding rows (and the changes of one
consumer batch are merged before they reach the queue: domain/pushes.coalesce), and the
stock figure is read from inventory when the push is sent, so the channel gets the latest
value once. A push acknowledged for an older version than the row now has stays due and
goes again.

The pusher works in batches: one statement leases the due pushes, one inventory call per
stock channel reads the figures of all their SKUs (one catalog call per marketplace channel
maps them), the POSTs run concurrently, and one statement per outcome records them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import grpc
import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from libs.errors import FailedPrecondition, NotFound
from libs.pg import Pg
from libs.telemetry import context_from_mapping, inject_context
from services.gateway import metrics
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.push_repository import PushRepository
from services.gateway.adapters.push_store import PgPushStore
from services.gateway.connectors import registry
from services.gateway.domain import pushes as rules
from services.gateway.domain.pushes import PushRequest, PushRow, coalesce

if TYPE_CHECKING:  # the operators' RPCs hand over their session; the SQL is in adapters/
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

KINDS = ("stock", "order_status", "price", "listing")

__all__ = ["KINDS", "PushRow", "PushSettings"]


@dataclass(frozen=True)
class PushSettings:
    backoff_seconds: float = rules.BASE_DELAY_SECONDS
    max_attempts: int = rules.MAX_ATTEMPTS
    batch: int = 100
    lease_seconds: float = 30.0
    timeout_seconds: float = 5.0
    poll_seconds: float = 0.2
    lag_refresh_seconds: float = 5.0


class PushQueue(Protocol):
    """Where pushes are queued: PgPushStore on the hot path, PushRepository in a session."""

    async def channels_by_stock(self, stock_channels: Collection[str]) -> dict[str, list[str]]: ...
    async def pushing_channels(self, channel_ids: Collection[str] | None = None) -> list[str]: ...
    async def enqueue(self, requests: Sequence[PushRequest]) -> None: ...


@dataclass(frozen=True)
class StockChange:
    """A location's ATP for a SKU changed; the location serves these stock channels."""

    sku_code: str
    stock_channels: tuple[str, ...]
    event_time: datetime
    trace_context: Mapping[str, str]


@dataclass(frozen=True)
class Change:
    """Something channels must hear about: to these channels (None: every pushing one)."""

    channel_ids: tuple[str, ...] | None
    kind: str
    subject: str
    facts: dict[str, Any]
    event_time: datetime
    trace_context: Mapping[str, str]


async def queue_stock_changes(queue: PushQueue, changes: Sequence[StockChange]) -> None:
    """Every channel whose stock channel the location serves gets a stock push for the SKU;
    a batch's changes of one SKU are one write per channel (the figure is read when the
    push is sent, so only the oldest change's time and trace matter)."""
    oldest: dict[tuple[str, tuple[str, ...]], StockChange] = {}
    for change in changes:
        key = (change.sku_code, change.stock_channels)
        known = oldest.get(key)
        if known is None or change.event_time < known.event_time:
            oldest[key] = change
    showing = await queue.channels_by_stock(
        {c for ch in oldest.values() for c in ch.stock_channels}
    )
    await queue.enqueue(
        coalesce(
            PushRequest(
                channel_id,
                "stock",
                change.sku_code,
                {"sku_code": change.sku_code},
                change.event_time,
                change.trace_context,
            )
            for change in oldest.values()
            for stock_channel in change.stock_channels
            for channel_id in showing.get(stock_channel, ())
        )
    )


async def queue_changes(queue: PushQueue, changes: Sequence[Change]) -> None:
    """Queue each change for its channels that push (active, with an endpoint)."""
    named = {c for change in changes if change.channel_ids for c in change.channel_ids}
    everyone = any(change.channel_ids is None for change in changes)
    pushing = set(await queue.pushing_channels(None if everyone else named))
    await queue.enqueue(
        coalesce(
            PushRequest(
                channel_id,
                change.kind,
                change.subject,
                change.facts,
                change.event_time,
                change.trace_context,
            )
            for change in changes
            for channel_id in sorted(
                pushing if change.channel_ids is None else pushing.intersection(change.channel_ids)
            )
        )
    )


# --- the pusher -----------------------------------------------------------------------


async def _stock_data(
    peers: Peers, channels: Mapping[str, dict[str, Any]], rows: Sequence[PushRow]
) -> dict[int, dict[str, Any] | str]:
    """Each stock push's data (or why it cannot be built): one availability call per stock
    channel for all its SKUs, one mapping call per marketplace channel."""
    found: dict[int, dict[str, Any] | str] = {}
    by_stock: dict[str, list[PushRow]] = defaultdict(list)
    for row in rows:
        by_stock[channels[row.channel_id]["stock_channel"]].append(row)
    for stock_channel, group in by_stock.items():
        try:
            availability = await peers.availability(stock_channel, [r.subject for r in group])
        except grpc.aio.AioRpcError as exc:
            for row in group:
                found[row.push_id] = f"peer {exc.code().name}: {exc.details()}"
            continue
        by_channel: dict[str, list[PushRow]] = defaultdict(list)
        for row in group:
            by_channel[row.channel_id].append(row)
        for channel_id, mine in by_channel.items():
            connector = registry.connector_for(channels[channel_id]["connector"])
            external: dict[str, str] = {}
            if connector.maps_skus:
                try:
                    external = await peers.external_ids_for(channel_id, [r.subject for r in mine])
                except grpc.aio.AioRpcError as exc:
                    for row in mine:
                        found[row.push_id] = f"peer {exc.code().name}: {exc.details()}"
                    continue
            for row in mine:
                sku = row.subject
                if connector.maps_skus and not external.get(sku):
                    found[row.push_id] = f"SKU {sku} has no mapping on this channel"
                    continue
                available = int(availability[sku].available) if sku in availability else 0
                found[row.push_id] = connector.stock_message(sku, external.get(sku, ""), available)
    return found


async def _data(
    peers: Peers, channels: Mapping[str, dict[str, Any]], rows: Sequence[PushRow]
) -> dict[int, dict[str, Any] | str]:
    """What each push carries in its connector's shape (stock and prices read now), or why
    it cannot be sent."""
    found: dict[int, dict[str, Any] | str] = {}
    stock: list[PushRow] = []
    for row in rows:
        channel = channels.get(row.channel_id)
        if channel is None or not channel["push_endpoint"] or channel["status"] != "active":
            found[row.push_id] = "channel has no active push endpoint"
        elif row.kind == "stock":
            stock.append(row)
        elif row.kind == "price":
            try:
                price = await peers.price(row.channel_id, row.subject)
            except grpc.aio.AioRpcError as exc:
                found[row.push_id] = f"peer {exc.code().name}: {exc.details()}"
                continue
            found[row.push_id] = {
                "type": "price",
                "sku_code": row.subject,
                "price_minor": price.price.amount_minor,
                "currency": price.price.currency_code,
                "sellable": price.sellable,
            }
        else:
            found[row.push_id] = dict(row.facts)
    found.update(await _stock_data(peers, channels, stock))
    return found


async def _deliver(
    client: httpx.AsyncClient,
    channel: dict[str, Any] | None,
    row: PushRow,
    data: dict[str, Any] | str,
) -> str | None:
    """POST the push in a span that continues the trace of the event that queued it; None
    when acknowledged, else why not."""
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
        error = await _post(client, channel, row, data)
        if error is not None:
            span.set_status(trace.StatusCode.ERROR, error[:200])
        return error


async def _post(
    client: httpx.AsyncClient,
    channel: dict[str, Any] | None,
    row: PushRow,
    data: dict[str, Any] | str,
) -> str | None:
    if isinstance(data, str):
        return data
    assert channel is not None
    body = {
        "push_id": row.push_id,
        "version": row.version,
        "kind": row.kind,
        "channel_id": row.channel_id,
        "subject": row.subject,
        "event_time": row.event_time.isoformat(),
        "data": data,
    }
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


async def _record(
    pg: Pg, rows: Sequence[PushRow], errors: Sequence[str | None], settings: PushSettings
) -> None:
    """Acknowledged pushes are done (if their version is still the one sent); failed ones
    wait their backoff, or are dead after the last attempt. Two statements per batch."""
    now = datetime.now(UTC)
    acknowledged = [row for row, error in zip(rows, errors, strict=True) if error is None]
    failures = [
        (
            row,
            row.attempts + 1,
            error[:1000],
            rules.after_failure(
                row.attempts + 1, now, settings.max_attempts, settings.backoff_seconds
            ),
        )
        for row, error in zip(rows, errors, strict=True)
        if error is not None
    ]
    async with pg.connection() as conn:
        store = PgPushStore(conn)
        await store.acknowledged(acknowledged, now)
        await store.failed(failures)
    for row in acknowledged:
        metrics.PUSHES.labels(kind=row.kind, outcome="acknowledged").inc()
        metrics.SYNC_LAG.labels(kind=row.kind, channel=row.channel_id).observe(
            rules.lag_seconds(row.event_time, now)
        )
    for row, attempts, error, retry_at in failures:
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


async def push_once(pg: Pg, peers: Peers, client: httpx.AsyncClient, settings: PushSettings) -> int:
    """Deliver one batch of due pushes; returns how many were attempted."""
    async with pg.connection() as conn:
        store = PgPushStore(conn)
        rows = await store.claim_due(settings.batch, settings.lease_seconds)
        if not rows:
            return 0
        channels = await store.channels({r.channel_id for r in rows})
    data = await _data(peers, channels, rows)
    errors = await asyncio.gather(
        *(_deliver(client, channels.get(r.channel_id), r, data[r.push_id]) for r in rows)
    )
    await _record(pg, rows, errors, settings)
    return len(rows)


async def run_pusher(pg: Pg, peers: Peers, settings: PushSettings) -> None:
    """The background task of every replica: poll for due pushes, deliver, repeat."""
    async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
        while True:
            try:
                if await push_once(pg, peers, client, settings):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pusher round failed")
            await asyncio.sleep(settings.poll_seconds)


# --- lag --------------------------------------------------------------------------------


async def refresh_lag_gauge(pg: Pg, now: datetime | None = None) -> dict[str, float]:
    """Set omni_gateway_oldest_pending_push_age_seconds for every channel (0 when up to
    date); a channel no longer pushing loses its series."""
    async with pg.connection() as conn:
        store = PgPushStore(conn)
        oldest = await store.oldest_unacknowledged()
        active = await store.pushing_channels()
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


async def run_lag_monitor(pg: Pg, interval_seconds: float = 5.0) -> None:
    """Background task: keep the oldest-pending-push gauge current, so a channel that is
    down shows its lag growing even though none of its pushes is acknowledged."""
    while True:
        try:
            await refresh_lag_gauge(pg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push lag refresh failed")
        await asyncio.sleep(interval_seconds)


# --- operators --------------------------------------------------------------------------


async def list_dead(
    session: AsyncSession, channel_id: str, after: int, limit: int
) -> list[PushRow]:
    return await PushRepository(session).dead(channel_id, after, limit)


async def retry_push(session: AsyncSession, push_id: int) -> PushRow:
    """A dead push goes back to the queue with a fresh attempt budget; if a newer push for
    the same subject is already pending, that one carries the change and this is refused."""
    repo = PushRepository(session)
    push = await repo.lock(push_id)
    if push is None:
        raise NotFound(f"push {push_id} not found")
    if push.status == "pending":
        return push
    if push.status != "dead":
        raise FailedPrecondition(f"push {push_id} is {push.status}, not dead")
    newer = await repo.pending_for(push.channel_id, push.kind, push.subject)
    if newer is not None:
        raise FailedPrecondition(f"push {newer} for the same {push.kind} is already pending")
    return await repo.requeue(push_id)


@dataclass(frozen=True)
class Reconciliation:
    repaired: list[tuple[str, int]]
    matched: int


async def reconcile_stock(
    session: AsyncSession, peers: Peers, channel_id: str, reported: Sequence[tuple[str, int]]
) -> Reconciliation:
    """Compare what the channel shows per SKU with our channel ATP; each difference queues a
    stock push (coalesced with any pending one), which sends our figure."""
    repo = PushRepository(session)
    channel = await repo.channel(channel_id)
    if channel is None:
        raise NotFound(f"channel {channel_id} not found")
    ours = await peers.availability(channel["stock_channel"], [sku for sku, _ in reported])
    repaired: list[tuple[str, int]] = []
    for sku, theirs in reported:
        actual = int(ours[sku].available) if sku in ours else 0
        if actual != theirs:
            repaired.append((sku, actual))
    now = datetime.now(UTC)
    await repo.enqueue(
        coalesce(
            PushRequest(
                channel_id,
                "stock",
                sku,
                {"sku_code": sku, "reason": "reconcile"},
                now,
                inject_context(),
            )
            for sku, _ in repaired
        )
    )
    return Reconciliation(repaired, len(reported) - len(repaired))
