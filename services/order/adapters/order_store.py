"""Orders in PostgreSQL, on a plain asyncpg connection: the aggregate loaded in one round
trip and saved in one statement — for one order or a batch of them.

Saving is optimistic: an order is written only if its version is still the one it was
loaded at (a concurrent change makes the save report it, and nothing of that order is
written — not its fulfilment orders, history or events). Everything an order's save writes
(the row, fulfilment orders, lines, history, returns and its events into the outbox) is one
statement, so it is all or nothing without a transaction of its own; inside a transaction
(row locks, several statements) it joins that transaction.

JSON travels as text both ways (cast in SQL), so this works on any asyncpg connection
whatever JSON codecs it has (ours from libs/pg.py, SQLAlchemy's in a consumer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.order.domain.order import (
    Fulfilment,
    HistoryEntry,
    Line,
    Order,
    OrderReturn,
)
from services.order.domain.orders import Address, AisleHandover, Mode, Payment
from services.order.domain.state_machine import FulfilmentStatus, Handover, OrderStatus

# An outbox row as the save statement takes it (libs.unit_of_work.outbox_row's fields).
OutboxRow = dict[str, Any]

_ORDER_COLUMNS = """
    o.order_id, o.channel_id, o.channel_order_id, o.content_hash, o.channel_kind,
    o.member_id, o.guest_contact, o.mode, o.aisle_handover, o.selling_store_id,
    o.selling_guide_staff_id, o.referring_guide_code, o.pickup_store_id, o.stock_channel,
    o.address::text AS address, o.currency, o.total_minor, o.status, o.payment,
    o.cancel_reason, o.routing::text AS routing, o.routing_attempts, o.retry_routing,
    o.pay_deadline, o.unfillable_deadline, o.hold_intent::text AS hold_intent, o.version,
    o.created_at, o.updated_at
"""
_LINES = """
    (SELECT json_agg(l ORDER BY l.position)::text FROM order_lines l
     WHERE l.order_id = o.order_id) AS lines
"""
_FULFILMENTS = """
    (SELECT json_agg(f ORDER BY f.seq)::text FROM fulfilments f
     WHERE f.order_id = o.order_id) AS fulfilments
"""
_HISTORY = """
    (SELECT json_agg(h ORDER BY h.id)::text FROM order_history h
     WHERE h.order_id = o.order_id) AS history
"""
_RETURNS = """
    (SELECT json_agg(r ORDER BY r.received_at)::text FROM order_returns r
     WHERE r.order_id = o.order_id) AS returns
"""

_OUTBOX_CTE = """
    INSERT INTO outbox (event_id, event_type, topic, key, bucket, envelope, trace_context)
    SELECT e.event_id, e.event_type, e.topic, e.key, e.bucket, e.envelope, e.trace_context::jsonb
    FROM unnest({p}::uuid[], {p1}::text[], {p2}::text[], {p3}::text[], {p4}::smallint[],
                {p5}::bytea[], {p6}::text[]) WITH ORDINALITY
         AS e(event_id, event_type, topic, key, bucket, envelope, trace_context, n)
    WHERE e.key IN (SELECT order_id FROM {source})
    ORDER BY e.n
"""


def _outbox_cte(first: int, source: str) -> str:
    names = {"p": f"${first}", **{f"p{i}": f"${first + i}" for i in range(1, 7)}}
    return _OUTBOX_CTE.format(source=source, **names)


def _outbox_args(rows: Sequence[OutboxRow]) -> list[Any]:
    return [
        [r["event_id"] for r in rows],
        [r["event_type"] for r in rows],
        [r["topic"] for r in rows],
        [r["key"] for r in rows],
        [r["bucket"] for r in rows],
        [r["envelope"] for r in rows],
        [json.dumps(r["trace_context"]) for r in rows],
    ]


# Rows that get ids from a sequence (history, outbox) are inserted in the order given
# (WITH ORDINALITY ... ORDER BY): a join on the saved orders must not reorder an order's
# history or its events, which leave in id order.

# --- insert: new orders, once per channel order id and per request id -----------------------

_INSERT = (
    """
WITH req AS (
    INSERT INTO processed_requests (method, request_id, fingerprint)
    SELECT 'CaptureOrder', t.request_id, t.fingerprint
    FROM unnest($1::text[], $2::bytea[]) AS t(request_id, fingerprint)
    ON CONFLICT DO NOTHING
    RETURNING request_id
), ord AS (
    INSERT INTO orders (
        order_id, channel_id, channel_order_id, content_hash, channel_kind, member_id,
        guest_contact, mode, aisle_handover, selling_store_id, selling_guide_staff_id,
        referring_guide_code, pickup_store_id, stock_channel, address, currency, total_minor,
        status, payment, routing_attempts, hold_intent, lease_until, created_at, updated_at,
        version)
    SELECT v.order_id, v.channel_id, v.channel_order_id, v.content_hash, v.channel_kind,
           v.member_id, v.guest_contact, v.mode, v.aisle_handover, v.selling_store_id,
           v.selling_guide_staff_id, v.referring_guide_code, v.pickup_store_id, v.stock_channel,
           v.address::jsonb, v.currency, v.total_minor, v.status, v.payment, v.routing_attempts,
           v.hold_intent::jsonb, v.lease_until, v.created_at, v.created_at, 1
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::text[], $16::text[], $17::text[], $18::text[], $19::bigint[], $20::text[],
                $21::text[], $22::int[], $23::text[], $24::timestamptz[], $25::timestamptz[],
                $26::text[])
         AS v(order_id, channel_id, channel_order_id, content_hash, channel_kind, member_id,
              guest_contact, mode, aisle_handover, selling_store_id, selling_guide_staff_id,
              referring_guide_code, pickup_store_id, stock_channel, address, currency,
              total_minor, status, payment, routing_attempts, hold_intent, lease_until,
              created_at, request_id)
    WHERE v.request_id IN (SELECT request_id FROM req)
    ON CONFLICT ON CONSTRAINT orders_channel_order_unique DO NOTHING
    RETURNING order_id
), lin AS (
    INSERT INTO order_lines (order_id, line_id, position, sku_code, quantity, unit_price_minor,
                             discount_minor, line_total_minor, category_code)
    SELECT * FROM unnest($27::text[], $28::text[], $29::int[], $30::text[], $31::int[],
                         $32::bigint[], $33::bigint[], $34::bigint[], $35::text[])
         AS l(order_id, line_id, position, sku_code, quantity, unit_price_minor, discount_minor,
              line_total_minor, category_code)
    WHERE l.order_id IN (SELECT order_id FROM ord)
), his AS (
    INSERT INTO order_history (order_id, from_status, to_status, note, at)
    SELECT h.order_id, h.from_status, h.to_status, h.note, h.at
    FROM unnest($36::text[], $37::text[], $38::text[], $39::text[], $40::timestamptz[])
         WITH ORDINALITY AS h(order_id, from_status, to_status, note, at, n)
    WHERE h.order_id IN (SELECT order_id FROM ord)
    ORDER BY h.n
), evt AS ("""
    + _outbox_cte(41, "ord")
    + """)
SELECT (SELECT coalesce(array_agg(request_id), '{}') FROM req) AS claimed,
       (SELECT coalesce(array_agg(order_id), '{}') FROM ord) AS inserted
"""
)


@dataclass(frozen=True)
class NewCapture:
    """An order to insert, under the capture's request id (and its fingerprint)."""

    order: Order
    request_id: str
    fingerprint: bytes
    lease_until: datetime | None
    outbox: list[OutboxRow]


@dataclass(frozen=True)
class InsertOutcome:
    claimed: set[str]
    inserted: set[str]


async def insert_new(conn: asyncpg.Connection, batch: Sequence[NewCapture]) -> InsertOutcome:
    """Insert the orders whose request id is new and whose channel order id is not taken;
    one statement for the whole batch. The caller keeps request ids and channel order ids
    unique within a batch."""
    orders = [c.order for c in batch]
    lines = [(o.order_id, line) for o in orders for line in o.lines]
    history = [(o.order_id, h) for o in orders for h in o.new_history]
    outbox = [row for c in batch for row in c.outbox]
    row = await conn.fetchrow(
        _INSERT,
        [c.request_id for c in batch],
        [c.fingerprint for c in batch],
        [o.order_id for o in orders],
        [o.channel_id for o in orders],
        [o.channel_order_id for o in orders],
        [o.content_hash for o in orders],
        [o.channel_kind for o in orders],
        [o.member_id for o in orders],
        [o.guest_contact for o in orders],
        [o.mode.value for o in orders],
        [o.aisle_handover.value for o in orders],
        [o.selling_store_id for o in orders],
        [o.selling_guide_staff_id for o in orders],
        [o.referring_guide_code for o in orders],
        [o.pickup_store_id for o in orders],
        [o.stock_channel for o in orders],
        [_dumps(_address(o.address)) for o in orders],
        [o.currency for o in orders],
        [o.total_minor for o in orders],
        [o.status.value for o in orders],
        [o.payment.value for o in orders],
        [o.routing_attempts for o in orders],
        [_dumps(o.hold_intent) for o in orders],
        [c.lease_until for c in batch],
        [o.created_at for o in orders],
        [c.request_id for c in batch],
        [oid for oid, _ in lines],
        [ln.line_id for _, ln in lines],
        [ln.position for _, ln in lines],
        [ln.sku_code for _, ln in lines],
        [ln.quantity for _, ln in lines],
        [ln.unit_price_minor for _, ln in lines],
        [ln.discount_minor for _, ln in lines],
        [ln.line_total_minor for _, ln in lines],
        [ln.category_code for _, ln in lines],
        [oid for oid, _ in history],
        [h.from_status.value for _, h in history],
        [h.to_status.value for _, h in history],
        [h.note for _, h in history],
        [h.at for _, h in history],
        *_outbox_args(outbox),
    )
    assert row is not None
    inserted = set(row["inserted"])
    for order in orders:
        if order.order_id in inserted:
            order.saved()
    return InsertOutcome(set(row["claimed"]), inserted)


async def request_fingerprints(
    conn: asyncpg.Connection, method: str, request_ids: Sequence[str]
) -> dict[str, bytes]:
    rows = await conn.fetch(
        "SELECT request_id, fingerprint FROM processed_requests "
        "WHERE method = $1 AND request_id = ANY($2::text[])",
        method,
        list(request_ids),
    )
    return {r["request_id"]: bytes(r["fingerprint"]) for r in rows}


# --- save: changes of loaded (or just inserted) orders -----------------------------------------

_SAVE = (
    """
WITH upd AS (
    UPDATE orders o SET
        status = v.status, payment = v.payment, cancel_reason = v.cancel_reason,
        routing = v.routing::jsonb, routing_attempts = v.routing_attempts,
        retry_routing = v.retry_routing, pay_deadline = v.pay_deadline,
        unfillable_deadline = v.unfillable_deadline, hold_intent = v.hold_intent::jsonb,
        lease_until = CASE WHEN v.release_lease THEN NULL ELSE o.lease_until END,
        updated_at = v.updated_at, version = o.version + 1
    FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::int[], $8::bool[], $9::timestamptz[], $10::timestamptz[], $11::text[],
                $12::bool[], $13::timestamptz[])
         AS v(order_id, version, status, payment, cancel_reason, routing, routing_attempts,
              retry_routing, pay_deadline, unfillable_deadline, hold_intent, release_lease,
              updated_at)
    WHERE o.order_id = v.order_id AND o.version = v.version
    RETURNING o.order_id
), fdel AS (
    DELETE FROM fulfilments
    WHERE fulfilment_id = ANY($14::text[]) AND order_id IN (SELECT order_id FROM upd)
), fput AS (
    INSERT INTO fulfilments (
        fulfilment_id, order_id, seq, location_id, status, handover, items, address,
        handover_store_id, via_transfer, transfer_id, transfer_requested, reservation_key,
        distance_meters, route_hint, assignee, created_at, updated_at)
    SELECT f.fulfilment_id, f.order_id, f.seq, f.location_id, f.status, f.handover,
           f.items::jsonb, f.address::jsonb, f.handover_store_id, f.via_transfer, f.transfer_id,
           f.transfer_requested, f.reservation_key, f.distance_meters, f.route_hint,
           f.assignee, f.created_at, f.updated_at
    FROM unnest($15::text[], $16::text[], $17::int[], $18::text[], $19::text[], $20::text[],
                $21::text[], $22::text[], $23::text[], $24::bool[], $25::text[], $26::bool[],
                $27::text[], $28::float8[], $29::text[], $30::text[], $31::timestamptz[],
                $32::timestamptz[])
         AS f(fulfilment_id, order_id, seq, location_id, status, handover, items, address,
              handover_store_id, via_transfer, transfer_id, transfer_requested,
              reservation_key, distance_meters, route_hint, assignee, created_at, updated_at)
    WHERE f.order_id IN (SELECT order_id FROM upd)
    ON CONFLICT (fulfilment_id) DO UPDATE SET
        location_id = excluded.location_id, status = excluded.status,
        handover = excluded.handover, items = excluded.items, address = excluded.address,
        handover_store_id = excluded.handover_store_id, via_transfer = excluded.via_transfer,
        transfer_id = excluded.transfer_id, transfer_requested = excluded.transfer_requested,
        reservation_key = excluded.reservation_key, distance_meters = excluded.distance_meters,
        route_hint = excluded.route_hint, assignee = excluded.assignee,
        updated_at = excluded.updated_at
), lput AS (
    UPDATE order_lines l SET returned_quantity = v.returned_quantity,
                             refunded_minor = v.refunded_minor
    FROM unnest($33::text[], $34::text[], $35::int[], $36::bigint[])
         AS v(order_id, line_id, returned_quantity, refunded_minor)
    WHERE l.order_id = v.order_id AND l.line_id = v.line_id
      AND v.order_id IN (SELECT order_id FROM upd)
), his AS (
    INSERT INTO order_history (order_id, from_status, to_status, note, at)
    SELECT h.order_id, h.from_status, h.to_status, h.note, h.at
    FROM unnest($37::text[], $38::text[], $39::text[], $40::text[], $41::timestamptz[])
         WITH ORDINALITY AS h(order_id, from_status, to_status, note, at, n)
    WHERE h.order_id IN (SELECT order_id FROM upd)
    ORDER BY h.n
), ret AS (
    INSERT INTO order_returns (return_id, order_id, receiving_location_id, by_post, lines,
                               refund_total_minor, currency, restocked, received_at)
    SELECT r.return_id, r.order_id, r.receiving_location_id, r.by_post, r.lines::jsonb,
           r.refund_total_minor, r.currency, false, r.received_at
    FROM unnest($42::text[], $43::text[], $44::text[], $45::bool[], $46::text[], $47::bigint[],
                $48::text[], $49::timestamptz[])
         AS r(return_id, order_id, receiving_location_id, by_post, lines, refund_total_minor,
              currency, received_at)
    WHERE r.order_id IN (SELECT order_id FROM upd)
), evt AS ("""
    + _outbox_cte(50, "upd")
    + """)
SELECT coalesce(array_agg(order_id), '{}') AS saved FROM upd
"""
)


@dataclass(frozen=True)
class Save:
    order: Order
    outbox: list[OutboxRow]
    # Give up the order's lease with this save (its driver is done with it).
    release_lease: bool = False


async def save(conn: asyncpg.Connection, batch: Sequence[Save]) -> set[str]:
    """Write the changes of every order whose version still matches; returns the ids saved
    (an order changed concurrently is left out whole)."""
    if not batch:
        return set()
    orders = [s.order for s in batch]
    changed = [f for o in orders for f in o.fulfilments if f.fulfilment_id in o.changed_fulfilments]
    removed = [fid for o in orders for fid in o.removed_fulfilments]
    lines = [line for o in orders for line in o.lines if line.line_id in o.changed_lines]
    line_orders = [
        o.order_id for o in orders for line in o.lines if line.line_id in o.changed_lines
    ]
    history = [(o.order_id, h) for o in orders for h in o.new_history]
    returns = [r for o in orders for r in o.new_returns]
    outbox = [row for s in batch for row in s.outbox]
    row = await conn.fetchrow(
        _SAVE,
        [o.order_id for o in orders],
        [o.version for o in orders],
        [o.status.value for o in orders],
        [o.payment.value for o in orders],
        [o.cancel_reason for o in orders],
        [_dumps(o.routing) for o in orders],
        [o.routing_attempts for o in orders],
        [o.retry_routing for o in orders],
        [o.pay_deadline for o in orders],
        [o.unfillable_deadline for o in orders],
        [_dumps(o.hold_intent) for o in orders],
        [s.release_lease for s in batch],
        [o.updated_at for o in orders],
        removed,
        [f.fulfilment_id for f in changed],
        [f.order_id for f in changed],
        [f.seq for f in changed],
        [f.location_id for f in changed],
        [f.status.value for f in changed],
        [f.handover.value for f in changed],
        [json.dumps(f.items) for f in changed],
        [_dumps(f.address) for f in changed],
        [f.handover_store_id for f in changed],
        [f.via_transfer for f in changed],
        [f.transfer_id for f in changed],
        [f.transfer_requested for f in changed],
        [f.reservation_key for f in changed],
        [f.distance_meters for f in changed],
        [f.route_hint for f in changed],
        [f.assignee for f in changed],
        [f.created_at for f in changed],
        [f.updated_at for f in changed],
        line_orders,
        [line.line_id for line in lines],
        [line.returned_quantity for line in lines],
        [line.refunded_minor for line in lines],
        [oid for oid, _ in history],
        [h.from_status.value for _, h in history],
        [h.to_status.value for _, h in history],
        [h.note for _, h in history],
        [h.at for _, h in history],
        [r.return_id for r in returns],
        [r.order_id for r in returns],
        [r.receiving_location_id for r in returns],
        [r.by_post for r in returns],
        [json.dumps(r.lines) for r in returns],
        [r.refund_total_minor for r in returns],
        [r.currency for r in returns],
        [r.received_at for r in returns],
        *_outbox_args(outbox),
    )
    assert row is not None
    saved = set(row["saved"])
    for order in orders:
        if order.order_id in saved:
            order.saved()
    return saved


# --- loading ------------------------------------------------------------------------------------


async def load(
    conn: asyncpg.Connection, order_id: str, *, lock: bool = False, details: bool = False
) -> Order | None:
    """The order with its lines and fulfilment orders (and, with ``details``, its history
    and returns) in one round trip; ``lock`` takes its row lock (inside a transaction)."""
    extra = f", {_HISTORY}, {_RETURNS}" if details else ""
    row = await conn.fetchrow(
        f"SELECT {_ORDER_COLUMNS}, {_LINES}, {_FULFILMENTS}{extra} FROM orders o "
        f"WHERE o.order_id = $1{' FOR UPDATE OF o' if lock else ''}",
        order_id,
    )
    return None if row is None else order_from_row(row)


async def load_many(conn: asyncpg.Connection, order_ids: Sequence[str]) -> dict[str, Order]:
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS}, {_LINES}, {_FULFILMENTS} FROM orders o "
        "WHERE o.order_id = ANY($1::text[])",
        list(order_ids),
    )
    return {r["order_id"]: order_from_row(r) for r in rows}


async def by_channel_orders(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Order]:
    """Orders by (channel id, channel order id)."""
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS}, {_LINES}, {_FULFILMENTS} FROM orders o "
        "JOIN unnest($1::text[], $2::text[]) AS k(channel_id, channel_order_id) "
        "ON o.channel_id = k.channel_id AND o.channel_order_id = k.channel_order_id",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["channel_id"], r["channel_order_id"]): order_from_row(r) for r in rows}


def order_from_row(row: asyncpg.Record) -> Order:
    address = _loads(row["address"])
    order = Order(
        order_id=row["order_id"],
        channel_id=row["channel_id"],
        channel_order_id=row["channel_order_id"],
        content_hash=row["content_hash"],
        channel_kind=row["channel_kind"],
        member_id=row["member_id"],
        guest_contact=row["guest_contact"],
        mode=Mode(row["mode"]),
        aisle_handover=AisleHandover(row["aisle_handover"]),
        selling_store_id=row["selling_store_id"],
        selling_guide_staff_id=row["selling_guide_staff_id"],
        referring_guide_code=row["referring_guide_code"],
        pickup_store_id=row["pickup_store_id"],
        stock_channel=row["stock_channel"],
        address=Address(**address) if address else None,
        currency=row["currency"],
        total_minor=row["total_minor"],
        status=OrderStatus(row["status"]),
        payment=Payment(row["payment"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        cancel_reason=row["cancel_reason"],
        routing=_loads(row["routing"]),
        routing_attempts=row["routing_attempts"],
        retry_routing=row["retry_routing"],
        pay_deadline=row["pay_deadline"],
        unfillable_deadline=row["unfillable_deadline"],
        hold_intent=_loads(row["hold_intent"]),
        version=row["version"],
        persisted=True,
    )
    order.lines = [_line(x) for x in _loads(row["lines"]) or []]
    order.fulfilments = [_fulfilment(x) for x in _loads(row["fulfilments"]) or []]
    keys = row.keys()
    if "history" in keys:
        order.history = [_history(x) for x in _loads(row["history"]) or []]
    if "returns" in keys:
        order.returns = [_return(x) for x in _loads(row["returns"]) or []]
    return order


def _line(x: dict[str, Any]) -> Line:
    return Line(
        line_id=x["line_id"],
        position=x["position"],
        sku_code=x["sku_code"],
        quantity=x["quantity"],
        unit_price_minor=x["unit_price_minor"],
        discount_minor=x["discount_minor"],
        line_total_minor=x["line_total_minor"],
        category_code=x["category_code"],
        returned_quantity=x["returned_quantity"],
        refunded_minor=x["refunded_minor"],
    )


def _fulfilment(x: dict[str, Any]) -> Fulfilment:
    return Fulfilment(
        fulfilment_id=x["fulfilment_id"],
        order_id=x["order_id"],
        seq=x["seq"],
        location_id=x["location_id"],
        status=FulfilmentStatus(x["status"]),
        handover=Handover(x["handover"]),
        items=x["items"],
        address=x["address"],
        handover_store_id=x["handover_store_id"],
        via_transfer=x["via_transfer"],
        reservation_key=x["reservation_key"],
        distance_meters=float(x["distance_meters"]),
        route_hint=x["route_hint"],
        assignee=x["assignee"],
        transfer_id=x["transfer_id"],
        transfer_requested=x["transfer_requested"],
        created_at=_time(x["created_at"]),
        updated_at=_time(x["updated_at"]),
    )


def _history(x: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        OrderStatus(x["from_status"]), OrderStatus(x["to_status"]), x["note"], _time(x["at"])
    )


def _return(x: dict[str, Any]) -> OrderReturn:
    return OrderReturn(
        return_id=x["return_id"],
        order_id=x["order_id"],
        receiving_location_id=x["receiving_location_id"],
        by_post=x["by_post"],
        lines=x["lines"],
        refund_total_minor=x["refund_total_minor"],
        currency=x["currency"],
        received_at=_time(x["received_at"]) or datetime.min,
        restocked=x["restocked"],
    )


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "province": address.province,
        "city": address.city,
        "district": address.district,
        "street": address.street,
        "postal_code": address.postal_code,
        "latitude": address.latitude,
        "longitude": address.longitude,
    }


# --- leases: one driver per order at a time ---------------------------------------------------


async def claim(conn: asyncpg.Connection, order_id: str, lease_seconds: float) -> bool:
    got = await conn.fetchval(
        "UPDATE orders SET lease_until = now() + make_interval(secs => $2) "
        "WHERE order_id = $1 AND (lease_until IS NULL OR lease_until < now()) "
        "RETURNING order_id",
        order_id,
        float(lease_seconds),
    )
    return got is not None


async def unlease(conn: asyncpg.Connection, order_id: str) -> None:
    await conn.execute("UPDATE orders SET lease_until = NULL WHERE order_id = $1", order_id)


# --- the background round's queries (inside a transaction: rows shared with SKIP LOCKED) ------


async def due_for_work(
    conn: asyncpg.Connection, statuses: Sequence[OrderStatus], idle_seconds: float, limit: int
) -> list[str]:
    """Orders left mid-step (a crash, a lost lease) that no one is driving now."""
    rows = await conn.fetch(
        "SELECT order_id FROM orders WHERE status = ANY($1::text[]) "
        "AND (lease_until IS NULL OR lease_until < now()) "
        "AND updated_at < now() - make_interval(secs => $2) "
        "ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        [s.value for s in statuses],
        float(idle_seconds),
        limit,
    )
    return [r[0] for r in rows]


async def expired(
    conn: asyncpg.Connection, status: OrderStatus, column: str, now: datetime, limit: int
) -> list[str]:
    assert column in {"pay_deadline", "unfillable_deadline"}
    rows = await conn.fetch(
        f"SELECT order_id FROM orders WHERE status = $1 AND {column} IS NOT NULL "
        f"AND {column} < $2 ORDER BY {column} LIMIT $3 FOR UPDATE SKIP LOCKED",
        status.value,
        now,
        limit,
    )
    return [r[0] for r in rows]


async def unfillable_to_retry(conn: asyncpg.Connection, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT order_id FROM orders WHERE status = 'unfillable' AND retry_routing "
        "LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [r[0] for r in rows]


async def count_in(conn: asyncpg.Connection, status: OrderStatus) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM orders WHERE status = $1", status.value))


async def unfillable_skus(conn: asyncpg.Connection) -> set[str]:
    """The SKUs unfillable orders wait for (the stock consumer wakes only their orders)."""
    rows = await conn.fetch(
        "SELECT DISTINCT l.sku_code FROM orders o JOIN order_lines l USING (order_id) "
        "WHERE o.status = 'unfillable' AND NOT o.retry_routing"
    )
    return {r[0] for r in rows}


async def flag_unfillable_with_skus(conn: asyncpg.Connection, sku_codes: Sequence[str]) -> int:
    """Unfillable orders with any of these SKUs are routed again by the next round."""
    result = await conn.execute(
        "UPDATE orders SET retry_routing = true WHERE status = 'unfillable' "
        "AND NOT retry_routing AND order_id IN "
        "(SELECT order_id FROM order_lines WHERE sku_code = ANY($1::text[]))",
        list(sku_codes),
    )
    return int(result.split()[-1])


async def order_of_fulfilment(conn: asyncpg.Connection, fulfilment_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT order_id FROM fulfilments WHERE fulfilment_id = $1", fulfilment_id
    )
    return None if value is None else str(value)


async def order_of_hold(conn: asyncpg.Connection, reservation_key: str) -> str | None:
    value = await conn.fetchval(
        "SELECT order_id FROM fulfilments WHERE reservation_key = $1", reservation_key
    )
    return None if value is None else str(value)


async def unrestocked_returns(
    conn: asyncpg.Connection, idle_seconds: float, limit: int
) -> list[OrderReturn]:
    rows = await conn.fetch(
        "SELECT row_to_json(r)::text AS r FROM order_returns r WHERE NOT restocked "
        "AND received_at < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED",
        float(idle_seconds),
        limit,
    )
    return [_return(json.loads(r["r"])) for r in rows]


async def mark_restocked(conn: asyncpg.Connection, return_id: str) -> None:
    await conn.execute("UPDATE order_returns SET restocked = true WHERE return_id = $1", return_id)


# --- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFilter:
    channel_id: str = ""
    store_id: str = ""
    guide_staff_id: str = ""
    member_id: str = ""
    status: OrderStatus | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    after: tuple[datetime, str] | None = None


async def list_orders(conn: asyncpg.Connection, where: OrderFilter, limit: int) -> list[Order]:
    """Newest first, with lines (ListOrders pages by (created_at, order_id))."""
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if where.channel_id:
        clauses.append(f"o.channel_id = {arg(where.channel_id)}")
    if where.store_id:
        store = arg(where.store_id)
        clauses.append(
            f"(o.selling_store_id = {store} OR o.pickup_store_id = {store} OR o.order_id IN "
            f"(SELECT order_id FROM fulfilments WHERE location_id = {store}))"
        )
    if where.guide_staff_id:
        clauses.append(f"o.selling_guide_staff_id = {arg(where.guide_staff_id)}")
    if where.member_id:
        clauses.append(f"o.member_id = {arg(where.member_id)}")
    if where.status is not None:
        clauses.append(f"o.status = {arg(where.status.value)}")
    if where.created_from is not None:
        clauses.append(f"o.created_at >= {arg(where.created_from)}")
    if where.created_to is not None:
        clauses.append(f"o.created_at < {arg(where.created_to)}")
    if where.after is not None:
        clauses.append(
            f"(o.created_at, o.order_id) < ({arg(where.after[0])}, {arg(where.after[1])})"
        )
    condition = " AND ".join(clauses) or "true"
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS}, {_LINES}, NULL::text AS fulfilments FROM orders o "
        f"WHERE {condition} ORDER BY o.created_at DESC, o.order_id DESC LIMIT {arg(limit)}",
        *args,
    )
    return [order_from_row(r) for r in rows]


# --- routing rules --------------------------------------------------------------------------------


async def rules(
    conn: asyncpg.Connection, channel_id: str, version: int = 0
) -> dict[str, Any] | None:
    if version:
        row = await conn.fetchrow(
            "SELECT channel_id, version, body::text AS body, created_at FROM routing_rules "
            "WHERE channel_id = $1 AND version = $2",
            channel_id,
            version,
        )
    else:
        row = await conn.fetchrow(
            "SELECT channel_id, version, body::text AS body, created_at FROM routing_rules "
            "WHERE channel_id = $1 ORDER BY version DESC LIMIT 1",
            channel_id,
        )
    if row is None:
        return None
    return {**dict(row), "body": json.loads(row["body"])}


async def add_rules(
    conn: asyncpg.Connection, channel_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A new version of the channel's rules (versions serialised per channel by an
    advisory lock; call inside a transaction)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"rules:{channel_id}")
    row = await conn.fetchrow(
        "INSERT INTO routing_rules (channel_id, version, body) "
        "SELECT $1, coalesce(max(version), 0) + 1, $2::text::jsonb FROM routing_rules "
        "WHERE channel_id = $1 "
        "RETURNING channel_id, version, body::text AS body, created_at",
        channel_id,
        json.dumps(body),
    )
    assert row is not None
    return {**dict(row), "body": json.loads(row["body"])}
