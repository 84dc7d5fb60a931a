"""The commission use cases (service_layer/commissions.py) against a fake store: a batch of
completed orders pays every role once per order, books in the first open period and
records each order for statistics; returns take back cumulatively, never more than was
paid; the settlement entries always net to what the lines say is still paid."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from google.protobuf.message import Message
from omni.distribution.v1 import events_pb2

from services.distribution.domain.attribution import CompletedOrder, Fulfilment
from services.distribution.domain.commission_rules import (
    Channel,
    Flow,
    Handover,
    Line,
    Mode,
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
from services.distribution.service_layer import commissions
from services.distribution.service_layer.access import DistributionConfig
from services.distribution.service_layer.commissions import ReceivedReturn

T0 = datetime(2026, 3, 10, tzinfo=UTC)
CONFIG = DistributionConfig(link_key=b"test-key", admin_staff_id="admin")


def unit(unit_id: str, kind: UnitKind, path: str, location: str = "") -> OrgUnit:
    return OrgUnit(unit_id, kind, unit_id, "", path, "HQ", "Zhejiang", "Hangzhou", location, ())


HQ_UNITS = {
    "S1": unit("S1", UnitKind.STORE, "/HQ/ZJ/HZ/S1/", "LOC-S1"),
    "D1": OrgUnit(
        "D1",
        UnitKind.DISTRIBUTOR,
        "D1",
        "",
        "/HQ/D1/",
        "HQ",
        "Jiangsu",
        "Nanjing",
        "LOC-D1",
        (Territory("Jiangsu"),),
    ),
}


@dataclass
class FakeCommissionStore:
    units: dict[str, OrgUnit] = field(default_factory=lambda: dict(HQ_UNITS))
    staff: dict[str, Staff] = field(
        default_factory=lambda: {"G1": Staff("G1", "S1", "g", StaffRole.GUIDE, False)}
    )
    owners: dict[str, str] = field(default_factory=lambda: {"M1": "G1"})
    rule_set: list[Rule] = field(
        default_factory=lambda: [
            Rule(Flow.OWN_STORE, Role.OWNING_GUIDE, 300, None, datetime(2026, 1, 1, tzinfo=UTC), 1),
            Rule(
                Flow.OWN_STORE, Role.SELLING_STORE, 500, None, datetime(2026, 1, 1, tzinfo=UTC), 1
            ),
        ]
    )
    closed: set[str] = field(default_factory=set)
    records: dict[str, OrderRecord] = field(default_factory=dict)
    lines: list[PaidCommissionLine] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    alerts: list[AlertDraft] = field(default_factory=list)
    applied_returns: set[tuple[str, str]] = field(default_factory=set)
    refunded: dict[str, int] = field(default_factory=dict)

    async def member_owners(self, member_ids: Collection[str]) -> dict[str, str]:
        return {m: g for m, g in self.owners.items() if m in member_ids}

    async def staff_with_units(
        self, staff_ids: Collection[str]
    ) -> dict[str, tuple[Staff, OrgUnit]]:
        return {s: (m, self.units[m.unit_id]) for s, m in self.staff.items() if s in staff_ids}

    async def units_named_or_located(
        self, unit_ids: Collection[str], location_ids: Collection[str]
    ) -> tuple[dict[str, OrgUnit], dict[str, OrgUnit]]:
        return (
            {u: self.units[u] for u in unit_ids if u in self.units},
            {u.location_id: u for u in self.units.values() if u.location_id in location_ids},
        )

    async def rules(self, hq_ids: Collection[str]) -> dict[str, list[Rule]]:
        return {hq: list(self.rule_set) for hq in hq_ids}

    async def minimum_prices(
        self, keys: Collection[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        return {}

    async def add_order_records(self, records: Sequence[OrderRecord]) -> set[str]:
        new = set()
        for record in records:
            if record.order_id not in self.records:
                self.records[record.order_id] = record
                new.add(record.order_id)
        return new

    async def add_commission_lines(self, lines: Sequence[PaidCommissionLine]) -> None:
        self.lines += lines

    async def lock_periods(self, hq_ids: Collection[str]) -> dict[str, set[str]]:
        return {hq: set(self.closed) for hq in hq_ids}

    async def add_entries(self, entries: Sequence[Entry]) -> None:
        self.entries += entries

    async def add_alerts(
        self, alerts: Sequence[tuple[str, str, AlertDraft]]
    ) -> list[dict[str, object]]:
        self.alerts += [draft for _, _, draft in alerts]
        return [
            {
                "alert_id": f"A{n}",
                "hq_id": hq,
                "kind": int(draft.kind),
                "status": 1,
                "dealer_id": draft.dealer_id,
                "dealer_path": path,
                "order_id": draft.order_id,
                "evidence": {},
                "raised_at": T0,
            }
            for n, (hq, path, draft) in enumerate(alerts)
        ]

    async def lock_paid_orders(self, order_ids: Collection[str]) -> dict[str, PaidOrder]:
        return {
            o: PaidOrder(o, r.hq_id, r.flow, r.currency)
            for o, r in self.records.items()
            if o in order_ids
        }

    async def add_applied_returns(self, returns: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        new = set(returns) - self.applied_returns
        self.applied_returns |= new
        return new

    async def lock_commission_lines(
        self, order_ids: Collection[str]
    ) -> dict[str, list[PaidCommissionLine]]:
        return {o: [line for line in self.lines if line.order_id == o] for o in order_ids}

    async def save_commission_lines(self, lines: Sequence[PaidCommissionLine]) -> None:
        """The lines handed out by lock_commission_lines are this store's own objects."""

    async def add_refunds(self, refunds: Sequence[tuple[str, int, int]]) -> None:
        for order_id, refunded, _taken in refunds:
            self.refunded[order_id] = self.refunded.get(order_id, 0) + refunded

    def paid_net(self) -> int:
        return sum(line.paid_minor - line.clawed_minor for line in self.lines)


@dataclass
class FakeWork:
    store: FakeCommissionStore = field(default_factory=FakeCommissionStore)
    events: list[Message] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, message: Message, aggregate_id: str) -> None:
        self.events.append(message)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


def store_sale(order_id: str, *, member: str = "M1", at: datetime = T0) -> CompletedOrder:
    return CompletedOrder(
        order_id=order_id,
        member_id=member,
        channel=Channel.STORE,
        mode=Mode.STORE_SALE,
        handover=Handover.UNSPECIFIED,
        selling_store_id="LOC-S1",
        selling_guide_staff_id="",
        referring_guide_code="",
        pickup_store_id="",
        delivery_province="",
        delivery_city="",
        lines=(Line("L1", 2, 20_000, "SKU-A"), Line("L2", 1, 10_000, "SKU-B")),
        fulfilments=(Fulfilment("F1", "LOC-S1", ("L1", "L2")),),
        currency="CNY",
        total_minor=30_000,
        completed_at=at,
    )


async def test_a_batch_pays_every_role_once_per_order_and_records_each_for_statistics():
    work = FakeWork()
    batch = [store_sale("O1"), store_sale("O2"), store_sale("O1")]
    await commissions.apply_orders_completed(work, batch, CONFIG)
    await commissions.apply_orders_completed(work, [store_sale("O2")], CONFIG)

    store = work.store
    assert sorted(store.records) == ["O1", "O2"]
    record = store.records["O1"]
    assert (record.flow, record.guide_staff_id, record.store_id) == (1, "G1", "S1")
    assert record.scope_path == "/HQ/ZJ/HZ/S1/" and record.commission_minor == 900 + 1500
    # 3 % to the owning guide, 5 % to the selling store, spread over the lines by value.
    paid = {
        (e.order_id, e.role, e.beneficiary.beneficiary_id): e.amount_minor for e in store.entries
    }
    assert paid == {
        ("O1", Role.OWNING_GUIDE, "G1"): 900,
        ("O1", Role.SELLING_STORE, "S1"): 1500,
        ("O2", Role.OWNING_GUIDE, "G1"): 900,
        ("O2", Role.SELLING_STORE, "S1"): 1500,
    }
    assert {e.period for e in store.entries} == {"2026-03"}
    assert sum(e.amount_minor for e in store.entries) == store.paid_net()
    accrued = [e for e in work.events if isinstance(e, events_pb2.CommissionAccruedEvent)]
    assert sorted(e.order_id for e in accrued) == ["O1", "O2"]


async def test_an_order_completed_in_a_closed_period_lands_in_the_first_open_one():
    work = FakeWork()
    work.store.closed = {"2026-03", "2026-04"}
    await commissions.apply_orders_completed(work, [store_sale("O1")], CONFIG)
    assert {e.period for e in work.store.entries} == {"2026-05"}


async def test_an_order_naming_no_known_unit_pays_nothing_and_is_counted_after_commit():
    work = FakeWork()
    stray = replace(store_sale("O9", member=""), selling_store_id="NOWHERE", fulfilments=())
    await commissions.apply_orders_completed(work, [stray], CONFIG)
    assert work.store.records == {} and work.store.entries == []
    assert len(work.callbacks) == 1  # the "unattributed" count, once committed


async def test_returns_in_one_batch_take_back_cumulatively_and_never_more_than_was_paid():
    work = FakeWork()
    await commissions.apply_orders_completed(work, [store_sale("O1")], CONFIG)
    returns = [
        ReceivedReturn("O1", "R1", (("L1", 1),), 10_000, T0),
        ReceivedReturn("O1", "R1", (("L1", 1),), 10_000, T0),  # the same return again
        ReceivedReturn("O1", "R2", (("L1", 1),), 10_000, T0),
        ReceivedReturn("O1", "R3", (("L1", 5),), 10_000, T0),  # more than is still out
        ReceivedReturn("UNPAID", "R4", (), 10_000, T0),
    ]
    await commissions.apply_returns_received(work, returns)
    store = work.store
    l1 = {line.role: line for line in store.lines if line.line_id == "L1"}
    assert all(line.returned_quantity == 2 for line in l1.values())
    assert all(line.clawed_minor == line.paid_minor for line in l1.values())
    clawbacks = [e for e in store.entries if e.amount_minor < 0]
    assert {e.return_id for e in clawbacks} == {"R1", "R2"}  # R3 found nothing left to take
    assert sum(e.amount_minor for e in store.entries) == store.paid_net()
    assert store.refunded == {"O1": 30_000}
    assert {k for k in store.applied_returns} == {("O1", "R1"), ("O1", "R2"), ("O1", "R3")}
