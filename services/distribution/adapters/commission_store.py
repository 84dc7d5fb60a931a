"""Commissions, statistics records, alerts and the member-owner projection for a batch of
events, on the consumer's asyncpg transaction: each method is one set-based statement for
the whole batch (column arrays, unnested), never one per event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from google.protobuf.message import Message

from libs.columns import columns
from libs.pg import PgTransaction
from services.distribution.adapters.repository import PERIOD_LOCK_NAMESPACE, territories_to_json
from services.distribution.domain.commission_rules import (
    Beneficiary,
    BeneficiaryKind,
    Flow,
    Role,
    Rule,
)
from services.distribution.domain.diversion import AlertDraft
from services.distribution.domain.ledger import Entry, OrderRecord, PaidCommissionLine, PaidOrder
from services.distribution.domain.organisation import (
    OrgUnit,
    Staff,
    StaffRole,
    Territory,
    UnitKind,
)

ALERT_OPEN = 1

_UNITS = """
SELECT unit_id, kind, name, parent_id, path, hq_id, province, city, location_id,
       territories::text AS territories
FROM org_units WHERE unit_id = ANY($1::text[]) OR location_id = ANY($2::text[])
"""

_STAFF = """
SELECT s.staff_id, s.role AS staff_role, s.is_virtual, s.name AS staff_name,
       u.unit_id, u.kind, u.name, u.parent_id, u.path, u.hq_id, u.province, u.city,
       u.location_id, u.territories::text AS territories
FROM staff AS s JOIN org_units AS u ON u.unit_id = s.unit_id
WHERE s.staff_id = ANY($1::text[])
"""

_RULES = """
SELECT hq_id, flow, role, rate_bp, fixed_minor, effective_from, version, saved_shipping_minor,
       currency
FROM commission_rules WHERE hq_id = ANY($1::text[])
ORDER BY hq_id, flow, role, version
"""

_MINIMUM_PRICES = """
SELECT m.hq_id, m.currency, m.sku_code, m.minimum_minor
FROM minimum_prices AS m
JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(hq_id, currency, sku_code)
  ON m.hq_id = k.hq_id AND m.currency = k.currency AND m.sku_code = k.sku_code
"""

_ADD_ORDER_RECORDS = """
INSERT INTO order_facts (order_id, hq_id, scope_path, flow, channel_kind, guide_staff_id,
                         store_id, province, city, currency, total_minor, commission_minor,
                         completed_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::smallint[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                     $11::bigint[], $12::bigint[], $13::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING order_id
"""

_ADD_LINES = """
INSERT INTO commission_lines (order_id, role, line_id, beneficiary_kind, beneficiary_id,
                              quantity, paid_minor)
SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::smallint[], $5::text[],
                     $6::int[], $7::bigint[])
"""

# Booking entries excludes closing a period of the same HQ (exclusive lock), not other
# bookings; taken in a fixed order so two batches cannot deadlock on them.
_LOCK_PERIODS = """
SELECT count(pg_advisory_xact_lock_shared($1, hashtext(h)))
FROM (SELECT h FROM unnest($2::text[]) AS h ORDER BY h) AS hqs
"""

_CLOSED_PERIODS = "SELECT hq_id, period FROM closed_periods WHERE hq_id = ANY($1::text[])"

_ADD_ENTRIES = """
INSERT INTO entries (hq_id, beneficiary_kind, beneficiary_id, period, kind, role, flow,
                     order_id, return_id, amount_minor, currency, occurred_at)
SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], $5::smallint[],
                     $6::smallint[], $7::smallint[], $8::text[], $9::text[], $10::bigint[],
                     $11::text[], $12::timestamptz[])
"""

_ADD_ALERTS = f"""
INSERT INTO alerts (alert_id, hq_id, kind, status, dealer_id, dealer_path, order_id,
                    evidence, raised_at)
SELECT a.alert_id, a.hq_id, a.kind, {ALERT_OPEN}, a.dealer_id, a.dealer_path, a.order_id,
       a.evidence::jsonb, now()
FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::text[],
            $7::text[]) WITH ORDINALITY
     AS a(alert_id, hq_id, kind, dealer_id, dealer_path, order_id, evidence, n)
ORDER BY a.n
RETURNING alert_id, hq_id, kind, status, dealer_id, dealer_path, order_id,
          evidence::text AS evidence, raised_at, resolution_note, resolved_by, resolved_at
"""

_LOCK_ORDER_RECORDS = """
SELECT order_id, hq_id, flow, currency FROM order_facts
WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE
"""

_ADD_APPLIED_RETURNS = """
INSERT INTO applied_returns (order_id, return_id)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT DO NOTHING
RETURNING order_id, return_id
"""

_LOCK_LINES = """
SELECT order_id, role, line_id, beneficiary_kind, beneficiary_id, quantity, paid_minor,
       returned_quantity, clawed_minor
FROM commission_lines WHERE order_id = ANY($1::text[])
ORDER BY order_id, role, line_id
FOR UPDATE
"""

# Absolute values: the rows are locked (FOR UPDATE) by this transaction.
_SAVE_LINES = """
UPDATE commission_lines AS c
SET returned_quantity = u.returned_quantity, clawed_minor = u.clawed_minor
FROM unnest($1::text[], $2::smallint[], $3::text[], $4::int[], $5::bigint[])
     AS u(order_id, role, line_id, returned_quantity, clawed_minor)
WHERE c.order_id = u.order_id AND c.role = u.role AND c.line_id = u.line_id
"""

_ADD_REFUNDS = """
UPDATE order_facts AS f
SET refunded_minor = f.refunded_minor + u.refunded, commission_minor = f.commission_minor - u.taken
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(order_id, refunded, taken)
WHERE f.order_id = u.order_id
"""

# Newest change wins: a change older than the one recorded arrives late and is dropped.
_SET_OWNERS = """
INSERT INTO member_owners AS o (member_id, guide_staff_id, store_id, changed_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (member_id) DO UPDATE
SET guide_staff_id = EXCLUDED.guide_staff_id, store_id = EXCLUDED.store_id,
    changed_at = EXCLUDED.changed_at
WHERE o.changed_at <= EXCLUDED.changed_at
"""


def _unit(row: Any) -> OrgUnit:
    return OrgUnit(
        unit_id=row["unit_id"],
        kind=UnitKind(row["kind"]),
        name=row["name"],
        parent_id=row["parent_id"] or "",
        path=row["path"],
        hq_id=row["hq_id"],
        province=row["province"],
        city=row["city"],
        location_id=row["location_id"] or "",
        territories=tuple(
            Territory(t["province"], t.get("city", "")) for t in json.loads(row["territories"])
        ),
    )


class PgCommissionStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- lookups ----------------------------------------------------------------------

    async def member_owners(self, member_ids: Collection[str]) -> dict[str, str]:
        """The owning guide's staff id of each member that has an owner on record."""
        wanted = sorted({m for m in member_ids if m})
        if not wanted:
            return {}
        rows = await self.conn.fetch(
            "SELECT member_id, guide_staff_id FROM member_owners WHERE member_id = ANY($1::text[])",
            wanted,
        )
        return {r["member_id"]: r["guide_staff_id"] for r in rows if r["guide_staff_id"]}

    async def staff_with_units(
        self, staff_ids: Collection[str]
    ) -> dict[str, tuple[Staff, OrgUnit]]:
        wanted = sorted({s for s in staff_ids if s})
        if not wanted:
            return {}
        rows = await self.conn.fetch(_STAFF, wanted)
        return {
            r["staff_id"]: (
                Staff(
                    r["staff_id"],
                    r["unit_id"],
                    r["staff_name"],
                    StaffRole(r["staff_role"]),
                    r["is_virtual"],
                ),
                _unit(r),
            )
            for r in rows
        }

    async def units_named_or_located(
        self, unit_ids: Collection[str], location_ids: Collection[str]
    ) -> tuple[dict[str, OrgUnit], dict[str, OrgUnit]]:
        """Units by id and units by inventory location id, in one round trip."""
        ids = sorted({u for u in unit_ids if u})
        locations = sorted({loc for loc in location_ids if loc})
        if not ids and not locations:
            return {}, {}
        found = [_unit(r) for r in await self.conn.fetch(_UNITS, ids, locations)]
        wanted_ids, wanted_locations = set(ids), set(locations)
        return (
            {u.unit_id: u for u in found if u.unit_id in wanted_ids},
            {u.location_id: u for u in found if u.location_id in wanted_locations},
        )

    async def rules(self, hq_ids: Collection[str]) -> dict[str, list[Rule]]:
        """Every version of every rule of each HQ."""
        found: dict[str, list[Rule]] = {hq: [] for hq in hq_ids}
        if not found:
            return found
        for r in await self.conn.fetch(_RULES, sorted(found)):
            found[r["hq_id"]].append(
                Rule(
                    flow=Flow(r["flow"]),
                    role=Role(r["role"]),
                    rate_bp=r["rate_bp"],
                    fixed_minor=r["fixed_minor"],
                    effective_from=r["effective_from"],
                    version=r["version"],
                    saved_shipping_minor=r["saved_shipping_minor"],
                    currency=r["currency"],
                )
            )
        return found

    async def minimum_prices(
        self, keys: Collection[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        """Minimum unit prices by (hq, currency, sku)."""
        if not keys:
            return {}
        ordered = sorted(set(keys))
        rows = await self.conn.fetch(
            _MINIMUM_PRICES, *columns(ordered, lambda k: k[0], lambda k: k[1], lambda k: k[2])
        )
        return {(r["hq_id"], r["currency"], r["sku_code"]): r["minimum_minor"] for r in rows}

    # --- completed orders -------------------------------------------------------------

    async def add_order_records(self, records: Sequence[OrderRecord]) -> set[str]:
        """Insert one record per order; the order ids that were new (a second delivery of
        an order, whatever its event id, finds its record and pays nothing)."""
        if not records:
            return set()
        rows = await self.conn.fetch(
            _ADD_ORDER_RECORDS,
            *columns(
                records,
                lambda r: r.order_id,
                lambda r: r.hq_id,
                lambda r: r.scope_path,
                lambda r: r.flow,
                lambda r: r.channel_kind,
                lambda r: r.guide_staff_id,
                lambda r: r.store_id,
                lambda r: r.province,
                lambda r: r.city,
                lambda r: r.currency,
                lambda r: r.total_minor,
                lambda r: r.commission_minor,
                lambda r: r.completed_at,
            ),
        )
        return {r["order_id"] for r in rows}

    async def add_commission_lines(self, lines: Sequence[PaidCommissionLine]) -> None:
        if lines:
            await self.conn.execute(
                _ADD_LINES,
                *columns(
                    lines,
                    lambda c: c.order_id,
                    lambda c: int(c.role),
                    lambda c: c.line_id,
                    lambda c: int(c.beneficiary.kind),
                    lambda c: c.beneficiary.beneficiary_id,
                    lambda c: c.quantity,
                    lambda c: c.paid_minor,
                ),
            )

    async def lock_periods(self, hq_ids: Collection[str]) -> dict[str, set[str]]:
        """Hold off closing a period of these HQs until this transaction ends, then read
        their closed periods (after the lock, so a close that just committed is seen)."""
        wanted = sorted(set(hq_ids))
        closed: dict[str, set[str]] = {hq: set() for hq in wanted}
        if not wanted:
            return closed
        await self.conn.fetchval(_LOCK_PERIODS, PERIOD_LOCK_NAMESPACE, wanted)
        for r in await self.conn.fetch(_CLOSED_PERIODS, wanted):
            closed[r["hq_id"]].add(r["period"])
        return closed

    async def add_entries(self, entries: Sequence[Entry]) -> None:
        if entries:
            await self.conn.execute(
                _ADD_ENTRIES,
                *columns(
                    entries,
                    lambda e: e.hq_id,
                    lambda e: int(e.beneficiary.kind),
                    lambda e: e.beneficiary.beneficiary_id,
                    lambda e: e.period,
                    lambda e: int(e.kind),
                    lambda e: int(e.role),
                    lambda e: e.flow,
                    lambda e: e.order_id,
                    lambda e: e.return_id,
                    lambda e: e.amount_minor,
                    lambda e: e.currency,
                    lambda e: e.occurred_at,
                ),
            )

    async def add_alerts(
        self, alerts: Sequence[tuple[str, str, AlertDraft]]
    ) -> list[dict[str, object]]:
        """(hq id, dealer path, draft) each raised as an open alert; the stored rows."""
        if not alerts:
            return []
        rows = await self.conn.fetch(
            _ADD_ALERTS,
            *columns(
                alerts,
                lambda _a: str(uuid.uuid4()),
                lambda a: a[0],
                lambda a: int(a[2].kind),
                lambda a: a[2].dealer_id,
                lambda a: a[1],
                lambda a: a[2].order_id,
                lambda a: json.dumps(_evidence(a[2])),
            ),
        )
        return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]

    # --- returns ----------------------------------------------------------------------

    async def lock_paid_orders(self, order_ids: Collection[str]) -> dict[str, PaidOrder]:
        """The orders named that were paid, their records locked; one never paid is absent."""
        wanted = sorted({o for o in order_ids if o})
        if not wanted:
            return {}
        rows = await self.conn.fetch(_LOCK_ORDER_RECORDS, wanted)
        return {
            r["order_id"]: PaidOrder(r["order_id"], r["hq_id"], r["flow"], r["currency"])
            for r in rows
        }

    async def add_applied_returns(self, returns: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """(order id, return id) pairs; those applied for the first time."""
        if not returns:
            return set()
        rows = await self.conn.fetch(
            _ADD_APPLIED_RETURNS, *columns(returns, lambda r: r[0], lambda r: r[1])
        )
        return {(r["order_id"], r["return_id"]) for r in rows}

    async def lock_commission_lines(
        self, order_ids: Collection[str]
    ) -> dict[str, list[PaidCommissionLine]]:
        found: dict[str, list[PaidCommissionLine]] = {o: [] for o in order_ids}
        if not found:
            return found
        for r in await self.conn.fetch(_LOCK_LINES, sorted(found)):
            found[r["order_id"]].append(
                PaidCommissionLine(
                    order_id=r["order_id"],
                    role=Role(r["role"]),
                    line_id=r["line_id"],
                    beneficiary=Beneficiary(
                        BeneficiaryKind(r["beneficiary_kind"]), r["beneficiary_id"]
                    ),
                    quantity=r["quantity"],
                    paid_minor=r["paid_minor"],
                    returned_quantity=r["returned_quantity"],
                    clawed_minor=r["clawed_minor"],
                )
            )
        return found

    async def save_commission_lines(self, lines: Sequence[PaidCommissionLine]) -> None:
        if lines:
            await self.conn.execute(
                _SAVE_LINES,
                *columns(
                    lines,
                    lambda c: c.order_id,
                    lambda c: int(c.role),
                    lambda c: c.line_id,
                    lambda c: c.returned_quantity,
                    lambda c: c.clawed_minor,
                ),
            )

    async def add_refunds(self, refunds: Sequence[tuple[str, int, int]]) -> None:
        """(order id, refunded, commission taken back) added to each order's record."""
        if refunds:
            await self.conn.execute(
                _ADD_REFUNDS, *columns(refunds, lambda r: r[0], lambda r: r[1], lambda r: r[2])
            )

    # --- member owners ----------------------------------------------------------------

    async def set_member_owners(self, owners: Sequence[tuple[str, str, str, datetime]]) -> None:
        """(member id, guide staff id, store id, changed at), at most one per member."""
        if owners:
            await self.conn.execute(
                _SET_OWNERS,
                *columns(owners, lambda o: o[0], lambda o: o[1], lambda o: o[2], lambda o: o[3]),
            )


def _evidence(draft: AlertDraft) -> dict[str, object]:
    evidence: dict[str, object] = {
        "fulfilment_id": draft.fulfilment_id,
        "delivery_province": draft.delivery_province,
        "delivery_city": draft.delivery_city,
        "territories": territories_to_json(draft.territories),
    }
    if draft.sku_code:
        evidence |= {
            "sku_code": draft.sku_code,
            "unit_price_minor": draft.unit_price_minor,
            "minimum_unit_price_minor": draft.minimum_unit_price_minor,
            "currency": draft.currency,
        }
    return evidence


class PgCommissionWork:
    """The batch's unit of work as the commission use cases see it: the store on the
    transaction's connection, and its events and after-commit callbacks."""

    def __init__(self, tx: PgTransaction) -> None:
        self.store = PgCommissionStore(tx.conn)
        self._tx = tx

    def emit(self, message: Message, aggregate_id: str) -> None:
        self._tx.emit(message, aggregate_id)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._tx.after_commit(callback)
