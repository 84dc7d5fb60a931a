"""Purchase history, points ledger and member totals for a batch of order events, on the
consumer's asyncpg transaction: every method is one set-based statement for the whole batch
(column arrays, unnested), never one per event."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import asyncpg
from google.protobuf.message import Message

from libs.columns import columns
from libs.errors import NotFound
from libs.pg import PgTransaction
from services.member.domain.points import PointsChangeKind, Tier
from services.member.domain.purchases import (
    CategoryRow,
    MemberAccount,
    OrderPoints,
    OrderRecord,
    PointsChange,
    PurchaseRecord,
)

ORDER, RETURN = 1, 2
# Categories of one row travel as one text (arrays of arrays must be rectangular).
_SEPARATOR = "\x1f"
# A chain of merges longer than this is a cycle (a bug): refuse rather than loop.
_MAX_MERGE_HOPS = 16

_LOCK_ACCOUNTS = """
SELECT member_id, merged_into, tier, points_balance, lifetime_spend_minor, order_count,
       last_purchase_at
FROM members WHERE member_id = ANY($1::text[])
ORDER BY member_id
FOR UPDATE
"""

_ADD_RECORDS = """
INSERT INTO purchase_history (member_id, kind, order_id, return_id, channel_id, channel_kind,
                              store_id, amount_minor, currency_code, categories, points_delta,
                              occurred_at)
SELECT r.member_id, {kind}, r.order_id, r.return_id, r.channel_id, r.channel_kind, r.store_id,
       r.amount_minor, r.currency_code,
       CASE WHEN r.categories = '' THEN '{{}}'::text[]
            ELSE string_to_array(r.categories, E'\\x1f') END,
       0, r.occurred_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::text[],
            $7::bigint[], $8::text[], $9::text[], $10::timestamptz[])
     WITH ORDINALITY AS r(member_id, order_id, return_id, channel_id, channel_kind, store_id,
                          amount_minor, currency_code, categories, occurred_at, n)
ORDER BY r.n
ON CONFLICT ({key}) WHERE kind = {kind} DO NOTHING
RETURNING id, {key}
"""

_ADD_CATEGORIES = """
INSERT INTO purchase_categories (history_id, category, member_id, occurred_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[])
"""

_ORDER_RECORDS = """
SELECT order_id, channel_id, channel_kind, amount_minor, currency_code
FROM purchase_history WHERE kind = 1 AND order_id = ANY($1::text[])
"""

# One pass per table for the whole batch (partial indexes on order_id, migration 0004): as
# joins, not a subquery per order, so even a plan made before the tables' statistics caught
# up (a seq scan) stays linear in the batch.
_ORDER_POINTS = """
WITH wanted AS (SELECT DISTINCT unnest($1::text[]) AS order_id),
points AS (
    SELECT order_id,
           coalesce(sum(delta) FILTER (WHERE kind = 1), 0) AS earned,
           coalesce(-sum(delta) FILTER (WHERE kind = 2), 0) AS reversed
    FROM points_entries
    WHERE kind IN (1, 2) AND order_id IN (SELECT order_id FROM wanted)
    GROUP BY order_id
),
refunds AS (
    SELECT order_id, -sum(amount_minor) AS refunded
    FROM purchase_history
    WHERE kind = 2 AND order_id IN (SELECT order_id FROM wanted)
    GROUP BY order_id
)
SELECT w.order_id, coalesce(p.earned, 0) AS earned, coalesce(p.reversed, 0) AS reversed,
       coalesce(r.refunded, 0) AS refunded
FROM wanted AS w
LEFT JOIN points AS p USING (order_id)
LEFT JOIN refunds AS r USING (order_id)
"""

_SET_POINTS_DELTAS = """
UPDATE purchase_history AS h SET points_delta = u.delta
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, delta)
WHERE h.id = u.id
"""

# Absolute values: the rows are locked (FOR UPDATE) by this transaction.
_SAVE_ACCOUNTS = """
UPDATE members AS m
SET tier = u.tier, points_balance = u.points_balance,
    lifetime_spend_minor = u.lifetime_spend_minor, order_count = u.order_count,
    last_purchase_at = u.last_purchase_at
FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::bigint[], $5::int[],
            $6::timestamptz[])
     AS u(member_id, tier, points_balance, lifetime_spend_minor, order_count, last_purchase_at)
WHERE m.member_id = u.member_id
"""

_ADD_POINTS_ENTRIES = """
INSERT INTO points_entries (member_id, kind, delta, balance_after, order_id, return_id, note,
                            created_at)
SELECT e.member_id, e.kind, e.delta, e.balance_after, e.order_id, e.return_id, '', now()
FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])
     WITH ORDINALITY AS e(member_id, kind, delta, balance_after, order_id, return_id, n)
ORDER BY e.n
"""


class PgPurchaseStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock_accounts(self, member_ids: Collection[str]) -> dict[str, MemberAccount]:
        """The accounts named, following merges to the surviving member (an order of a
        merged member goes to the survivor), locked for this transaction. A requested id
        that does not exist is absent."""
        found: dict[str, tuple[str | None, MemberAccount]] = {}
        wanted = sorted(set(member_ids))
        for _ in range(_MAX_MERGE_HOPS):
            if not wanted:
                break
            for row in await self.conn.fetch(_LOCK_ACCOUNTS, wanted):
                found[row["member_id"]] = (
                    row["merged_into"],
                    MemberAccount(
                        member_id=row["member_id"],
                        tier=Tier(row["tier"]),
                        points_balance=row["points_balance"],
                        lifetime_spend_minor=row["lifetime_spend_minor"],
                        order_count=row["order_count"],
                        last_purchase_at=row["last_purchase_at"],
                    ),
                )
            wanted = sorted(
                {merged for merged, _ in found.values() if merged and merged not in found}
            )
        accounts: dict[str, MemberAccount] = {}
        for member_id in member_ids:
            current, hops = member_id, 0
            while current in found and found[current][0]:
                current, hops = found[current][0] or "", hops + 1
                if hops > _MAX_MERGE_HOPS:
                    raise NotFound(
                        f"member {member_id!r} has no active survivor",
                        field="member_id",
                        resource_type="member",
                        resource_name=member_id,
                    )
            if current in found:
                accounts[member_id] = found[current][1]
        return accounts

    async def add_orders(self, records: Sequence[PurchaseRecord]) -> dict[str, int]:
        """Insert the history rows of completed orders; {order_id: history id} of those new
        (an order recorded before is left alone)."""
        return await self._add(ORDER, "order_id", records)

    async def add_returns(self, records: Sequence[PurchaseRecord]) -> dict[str, int]:
        """Insert the history rows of returns; {return_id: history id} of those new."""
        return await self._add(RETURN, "return_id", records)

    async def _add(self, kind: int, key: str, records: Sequence[PurchaseRecord]) -> dict[str, int]:
        if not records:
            return {}
        rows = await self.conn.fetch(
            _ADD_RECORDS.format(kind=kind, key=key),
            *columns(
                records,
                lambda r: r.member_id,
                lambda r: r.order_id,
                lambda r: r.return_id,
                lambda r: r.channel_id,
                lambda r: r.channel_kind,
                lambda r: r.store_id,
                lambda r: r.amount_minor,
                lambda r: r.currency,
                lambda r: _SEPARATOR.join(r.categories),
                lambda r: r.occurred_at,
            ),
        )
        return {row[key]: row["id"] for row in rows}

    async def add_categories(self, rows: Sequence[CategoryRow]) -> None:
        """The rows of the category projection of completed orders."""
        if rows:
            await self.conn.execute(
                _ADD_CATEGORIES,
                *columns(
                    rows,
                    lambda r: r.history_id,
                    lambda r: r.category,
                    lambda r: r.member_id,
                    lambda r: r.occurred_at,
                ),
            )

    async def order_records(self, order_ids: Collection[str]) -> dict[str, OrderRecord]:
        rows = await self.conn.fetch(_ORDER_RECORDS, sorted(set(order_ids)))
        return {
            r["order_id"]: OrderRecord(
                r["channel_id"], r["channel_kind"], r["amount_minor"], r["currency_code"]
            )
            for r in rows
        }

    async def order_points(self, order_ids: Collection[str]) -> dict[str, OrderPoints]:
        rows = await self.conn.fetch(_ORDER_POINTS, sorted(set(order_ids)))
        return {
            r["order_id"]: OrderPoints(int(r["earned"]), int(r["reversed"]), int(r["refunded"]))
            for r in rows
        }

    async def set_points_deltas(self, deltas: Mapping[int, int]) -> None:
        """The points each history row moved, by history id."""
        if deltas:
            await self.conn.execute(_SET_POINTS_DELTAS, list(deltas), list(deltas.values()))

    async def save_accounts(self, accounts: Sequence[MemberAccount]) -> None:
        if accounts:
            await self.conn.execute(
                _SAVE_ACCOUNTS,
                *columns(
                    accounts,
                    lambda a: a.member_id,
                    lambda a: int(a.tier),
                    lambda a: a.points_balance,
                    lambda a: a.lifetime_spend_minor,
                    lambda a: a.order_count,
                    lambda a: a.last_purchase_at,
                ),
            )

    async def add_points_entries(self, entries: Sequence[PointsChange]) -> None:
        if entries:
            await self.conn.execute(
                _ADD_POINTS_ENTRIES,
                *columns(
                    entries,
                    lambda e: e.member_id,
                    lambda e: int(PointsChangeKind(e.kind)),
                    lambda e: e.delta,
                    lambda e: e.balance_after,
                    lambda e: e.order_id,
                    lambda e: e.return_id,
                ),
            )


class PgPurchaseWork:
    """The batch's unit of work as the purchase use cases see it: the store on the
    transaction's connection, and its events and after-commit callbacks."""

    def __init__(self, tx: PgTransaction) -> None:
        self.store = PgPurchaseStore(tx.conn)
        self._tx = tx

    def emit(self, message: Message, aggregate_id: str) -> None:
        self._tx.emit(message, aggregate_id)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._tx.after_commit(callback)
