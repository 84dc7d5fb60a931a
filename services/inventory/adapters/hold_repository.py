"""The reservation engine's statements, on a plain asyncpg connection (libs/pg.py).

Each statement works on a whole batch of holds (column arrays, unnested), so a batch costs
the same few round trips whatever its size. Rows are claimed and locked in one global
order — request records, then reservation headers, then stock levels by (location, sku)
in code-point order (COLLATE "C", the order Python's sort gives the other writers) — so
batches never deadlock each other, nor confirm, release, move, expiry or transfers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from libs.pg import OUTBOX_ARRAY_TYPES, OUTBOX_COLUMNS
from services.inventory.adapters.location_repository import location_from_row
from services.inventory.domain.holds import Key, Sale
from services.inventory.domain.locations import Location
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
)
from services.inventory.domain.stock import StockLevel

_CLAIM_REQUESTS = """
INSERT INTO processed_requests (method, request_id, fingerprint)
SELECT k.method, k.request_id, k.fingerprint
FROM unnest($1::text[], $2::text[], $3::bytea[]) AS k(method, request_id, fingerprint)
ORDER BY k.method COLLATE "C", k.request_id COLLATE "C"
ON CONFLICT DO NOTHING
RETURNING method, request_id
"""

_STORED_REQUESTS = """
SELECT p.method, p.request_id, p.fingerprint, p.response
FROM processed_requests p
JOIN unnest($1::text[], $2::text[]) AS k(method, request_id)
  ON p.method = k.method AND p.request_id = k.request_id
"""

# One round trip for everything the decision needs:
# - the reservation headers, claimed by order id: a concurrent hold of the same order
#   (another batch, another replica) waits here on the key until the first commits,
#   instead of locking stock rows it would then give back;
# - the stock rows the claimed holds might take, locked in the global order. The Sort under
#   the row locks needs every claim done first, so no stock row is locked before a claim;
# - the named locations (as JSON), which SKUs inventory tracks, and the locations' version
#   (in the same snapshot as the locations, so a ranking made at it saw these locations).
_CLAIM_AND_LOCK = """
WITH claimed AS (
  INSERT INTO reservations (order_id, channel, status, expires_at, created_at, updated_at)
  SELECT h.order_id, h.channel, h.status, h.expires_at, $5, $5
  FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
    AS h(order_id, channel, status, expires_at)
  ORDER BY h.order_id COLLATE "C"
  ON CONFLICT DO NOTHING
  RETURNING order_id
),
wanted AS (
  SELECT DISTINCT w.location_id, w.sku_code
  FROM unnest($6::text[], $7::text[], $8::text[]) AS w(order_id, location_id, sku_code)
  JOIN claimed c ON c.order_id = w.order_id
),
locked AS MATERIALIZED (
  SELECT s.location_id, s.sku_code, s.on_hand, s.reserved, s.safety_stock, s.in_transit
  FROM stock_levels s
  JOIN wanted w ON s.location_id = w.location_id AND s.sku_code = w.sku_code
  ORDER BY s.location_id COLLATE "C", s.sku_code COLLATE "C"
  FOR UPDATE OF s
)
SELECT 'claimed' AS kind, order_id AS id, NULL::text AS sku_code, NULL::bigint AS on_hand,
       NULL::bigint AS reserved, NULL::bigint AS safety_stock, NULL::bigint AS in_transit,
       NULL::jsonb AS location
FROM claimed
UNION ALL
SELECT 'level', location_id, sku_code, on_hand, reserved, safety_stock, in_transit, NULL
FROM locked
UNION ALL
SELECT 'sku', sku_code, NULL, NULL, NULL, NULL, NULL, NULL
FROM tracked_skus WHERE sku_code = ANY($10::text[])
UNION ALL
SELECT 'location', location_id, NULL, NULL, NULL, NULL, NULL, to_jsonb(l)
FROM locations l WHERE location_id = ANY($9::text[])
UNION ALL
SELECT 'version', version::text, NULL, NULL, NULL, NULL, NULL, NULL
FROM locations_version
"""

_RESERVATIONS = """
SELECT r.order_id, r.channel, r.status, r.expires_at, r.created_at, r.updated_at,
       l.line_id, l.sku_code, l.location_id, l.quantity
FROM reservations r LEFT JOIN reservation_lines l ON l.order_id = r.order_id
WHERE r.order_id = ANY($1::text[])
"""

# Everything a decided batch writes, its events included, in one statement (no two parts
# touch the same row).
_WRITE = f"""
WITH
levels AS (
  UPDATE stock_levels s
  SET reserved = s.reserved + d.reserved, on_hand = s.on_hand + d.on_hand, updated_at = now()
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    AS d(location_id, sku_code, reserved, on_hand)
  WHERE s.location_id = d.location_id AND s.sku_code = d.sku_code
  RETURNING 1
),
dropped AS (
  DELETE FROM reservations WHERE order_id = ANY($5::text[]) RETURNING 1
),
lines AS (
  INSERT INTO reservation_lines (order_id, line_id, sku_code, location_id, quantity)
  SELECT * FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])
  RETURNING 1
),
sales AS (
  INSERT INTO stock_movements
    (location_id, sku_code, kind, quantity, on_hand_after, reason, idempotency_key, reference)
  SELECT m.location_id, m.sku_code, 'sale', -m.quantity, m.on_hand_after,
         'reservation confirmed',
         'reservation:' || m.order_id || ':' || m.location_id || ':' || m.sku_code, m.order_id
  FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[])
    AS m(order_id, location_id, sku_code, quantity, on_hand_after)
  RETURNING 1
),
answered AS (
  UPDATE processed_requests p SET response = a.response
  FROM unnest($16::text[], $17::text[], $18::bytea[]) AS a(method, request_id, response)
  WHERE p.method = a.method AND p.request_id = a.request_id
  RETURNING 1
),
unclaimed AS (
  DELETE FROM processed_requests p
  USING unnest($19::text[], $20::text[]) AS u(method, request_id)
  WHERE p.method = u.method AND p.request_id = u.request_id
  RETURNING 1
),
events AS (
  INSERT INTO outbox ({OUTBOX_COLUMNS})
  SELECT * FROM unnest({", ".join(f"${i}::{t}" for i, t in enumerate(OUTBOX_ARRAY_TYPES, 21))})
  RETURNING 1
)
SELECT (SELECT count(*) FROM levels) AS levels, (SELECT count(*) FROM dropped) AS dropped,
       (SELECT count(*) FROM lines) AS lines, (SELECT count(*) FROM sales) AS sales,
       (SELECT count(*) FROM answered) AS answered, (SELECT count(*) FROM unclaimed) AS unclaimed,
       (SELECT count(*) FROM events) AS events
"""

RequestId = tuple[str, str]  # (method, request_id)


@dataclass(frozen=True)
class StoredRequest:
    fingerprint: bytes
    response: bytes | None


@dataclass(frozen=True)
class Header:
    """A reservation header to claim: the order's key, written as the hold will leave it."""

    order_id: str
    channel: str
    status: ReservationStatus
    expires_at: datetime


@dataclass(frozen=True)
class BatchWrite:
    """What a decided batch changes."""

    reserved_delta: dict[Key, int]
    on_hand_delta: dict[Key, int]
    # Claimed headers of holds that were refused: a refusal leaves nothing behind.
    dropped_orders: list[str]
    lines: list[tuple[str, ReservationLine]]
    sales: list[Sale]
    answers: list[tuple[RequestId, bytes]]
    unclaimed_requests: list[RequestId]
    # The batch's events as outbox column arrays (PgTransaction.outbox_arrays).
    outbox: list[list[Any]]


async def claim_requests(
    conn: asyncpg.Connection, keys: Sequence[tuple[RequestId, bytes]]
) -> set[RequestId]:
    """Record the request ids (with their fingerprints); returns the ones new here."""
    rows = await conn.fetch(
        _CLAIM_REQUESTS,
        [method for (method, _), _ in keys],
        [request_id for (_, request_id), _ in keys],
        [fingerprint for _, fingerprint in keys],
    )
    return {(row["method"], row["request_id"]) for row in rows}


async def stored_requests(
    conn: asyncpg.Connection, keys: Sequence[RequestId]
) -> dict[RequestId, StoredRequest]:
    rows = await conn.fetch(
        _STORED_REQUESTS, [method for method, _ in keys], [rid for _, rid in keys]
    )
    return {
        (row["method"], row["request_id"]): StoredRequest(
            bytes(row["fingerprint"]), None if row["response"] is None else bytes(row["response"])
        )
        for row in rows
    }


@dataclass
class Claimed:
    """What the claim-and-lock statement found."""

    orders: set[str]
    levels: dict[Key, StockLevel]
    locations: dict[str, Location]
    tracked: set[str]
    locations_version: int = 0


async def claim_and_lock(
    conn: asyncpg.Connection,
    headers: Sequence[Header],
    now: datetime,
    rows: Sequence[tuple[str, Key]],
    location_ids: Sequence[str],
    sku_codes: Sequence[str],
) -> Claimed:
    """Claim the headers (the order ids claimed are new here; the others had one), lock
    the existing levels among ``rows`` ((order id, (location, sku)): what each hold might
    take) of the claimed orders, and read the locations and tracked SKUs."""
    found = Claimed(set(), {}, {}, set())
    for row in await conn.fetch(
        _CLAIM_AND_LOCK,
        [h.order_id for h in headers],
        [h.channel for h in headers],
        [h.status.value for h in headers],
        [h.expires_at for h in headers],
        now,
        [order_id for order_id, _ in rows],
        [loc for _, (loc, _) in rows],
        [sku for _, (_, sku) in rows],
        list(location_ids),
        list(sku_codes),
    ):
        kind = row["kind"]
        if kind == "claimed":
            found.orders.add(row["id"])
        elif kind == "level":
            key = (row["id"], row["sku_code"])
            found.levels[key] = StockLevel(
                *key, row["on_hand"], row["reserved"], row["safety_stock"], row["in_transit"]
            )
        elif kind == "sku":
            found.tracked.add(row["id"])
        elif kind == "version":
            found.locations_version = int(row["id"])
        else:
            location = row["location"]
            found.locations[row["id"]] = location_from_row(
                {**location, "created_at": datetime.fromisoformat(location["created_at"])}
            )
    return found


async def reservations(
    conn: asyncpg.Connection, order_ids: Sequence[str]
) -> dict[str, Reservation]:
    """Existing reservations with their lines (sorted by line id)."""
    headers: dict[str, asyncpg.Record] = {}
    lines: dict[str, list[ReservationLine]] = {}
    for row in await conn.fetch(_RESERVATIONS, list(order_ids)):
        headers[row["order_id"]] = row
        if row["line_id"] is not None:
            lines.setdefault(row["order_id"], []).append(
                ReservationLine(
                    row["line_id"], row["sku_code"], row["location_id"], row["quantity"]
                )
            )
    return {
        order_id: Reservation(
            order_id=order_id,
            channel=h["channel"],
            status=ReservationStatus(h["status"]),
            lines=tuple(sorted(lines.get(order_id, []), key=lambda line: line.line_id)),
            expires_at=h["expires_at"],
            created_at=h["created_at"],
            updated_at=h["updated_at"],
        )
        for order_id, h in headers.items()
    }


async def write(conn: asyncpg.Connection, batch: BatchWrite) -> None:
    """Apply a decided batch in one statement; a count that differs from what was decided
    means a row vanished under the lock — a broken invariant, so the batch rolls back."""
    changed = sorted(set(batch.reserved_delta) | set(batch.on_hand_delta))
    counts = await conn.fetchrow(
        _WRITE,
        [loc for loc, _ in changed],
        [sku for _, sku in changed],
        [batch.reserved_delta.get(key, 0) for key in changed],
        [batch.on_hand_delta.get(key, 0) for key in changed],
        batch.dropped_orders,
        [order_id for order_id, _ in batch.lines],
        [line.line_id for _, line in batch.lines],
        [line.sku_code for _, line in batch.lines],
        [line.location_id for _, line in batch.lines],
        [line.quantity for _, line in batch.lines],
        [s.order_id for s in batch.sales],
        [s.location_id for s in batch.sales],
        [s.sku_code for s in batch.sales],
        [s.quantity for s in batch.sales],
        [s.on_hand_after for s in batch.sales],
        [method for (method, _), _ in batch.answers],
        [rid for (_, rid), _ in batch.answers],
        [response for _, response in batch.answers],
        [method for method, _ in batch.unclaimed_requests],
        [rid for _, rid in batch.unclaimed_requests],
        *batch.outbox,
    )
    expected = {
        "levels": len(changed),
        "dropped": len(batch.dropped_orders),
        "lines": len(batch.lines),
        "sales": len(batch.sales),
        "answered": len(batch.answers),
        "unclaimed": len(batch.unclaimed_requests),
        "events": len(batch.outbox[0]),
    }
    assert counts is not None
    wrote = {name: counts[name] for name in expected}
    if wrote != expected:
        raise RuntimeError(f"reservation batch wrote {wrote}, decided {expected}")
