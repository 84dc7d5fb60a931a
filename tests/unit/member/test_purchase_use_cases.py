"""The purchase use cases (service_layer/purchases.py) against a fake store: a batch of
order events applied at once gives what applying them one by one gives — points at the tier
before each order, upgrades mid-batch, cumulative reversals, once per order and return —
and the points ledger sums to the balance."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message
from omni.member.v1 import events_pb2

from libs.errors import NotFound
from services.member.domain.points import PointsChangeKind, Tier
from services.member.domain.purchases import (
    CategoryRow,
    MemberAccount,
    OrderPoints,
    OrderRecord,
    PointsChange,
    PurchaseRecord,
)
from services.member.service_layer import purchases
from services.member.service_layer.purchases import CompletedOrder, ReceivedReturn

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class StoredMember:
    account: MemberAccount
    merged_into: str | None = None


@dataclass
class FakePurchaseStore:
    members: dict[str, StoredMember] = field(default_factory=dict)
    history: dict[int, PurchaseRecord] = field(default_factory=dict)
    points_deltas: dict[int, int] = field(default_factory=dict)
    categories: list[CategoryRow] = field(default_factory=list)
    ledger: list[PointsChange] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_member(self, member_id: str, merged_into: str | None = None) -> None:
        self.members[member_id] = StoredMember(
            MemberAccount(member_id, Tier.BASIC, 0, 0, 0, None), merged_into
        )

    async def lock_accounts(self, member_ids: Collection[str]) -> dict[str, MemberAccount]:
        found = {}
        for member_id in member_ids:
            current = member_id
            while current in self.members and self.members[current].merged_into:
                current = self.members[current].merged_into or ""
            if current in self.members:
                found[member_id] = replace(self.members[current].account, changes=[])
        # One object per account, however many ids lead to it.
        by_id = {a.member_id: a for a in found.values()}
        return {requested: by_id[a.member_id] for requested, a in found.items()}

    async def add_orders(self, records: Sequence[PurchaseRecord]) -> dict[str, int]:
        return self._add(records, lambda r: r.order_id, returns=False)

    async def add_returns(self, records: Sequence[PurchaseRecord]) -> dict[str, int]:
        return self._add(records, lambda r: r.return_id, returns=True)

    def _add(
        self, records: Sequence[PurchaseRecord], key: Callable[[PurchaseRecord], str], returns: bool
    ) -> dict[str, int]:
        added = {}
        for record in records:
            taken = {key(r) for r in self.history.values() if bool(r.return_id) == returns}
            if key(record) in taken:
                continue
            history_id = next(self.ids)
            self.history[history_id] = record
            added[key(record)] = history_id
        return added

    async def add_categories(self, rows: Sequence[CategoryRow]) -> None:
        self.categories += rows

    async def order_records(self, order_ids: Collection[str]) -> dict[str, OrderRecord]:
        return {
            r.order_id: OrderRecord(r.channel_id, r.channel_kind, r.amount_minor, r.currency)
            for r in self.history.values()
            if not r.return_id and r.order_id in order_ids
        }

    async def order_points(self, order_ids: Collection[str]) -> dict[str, OrderPoints]:
        found = {}
        for order_id in order_ids:
            entries = [e for e in self.ledger if e.order_id == order_id]
            found[order_id] = OrderPoints(
                earned=sum(e.delta for e in entries if e.kind == PointsChangeKind.EARN),
                reversed=-sum(e.delta for e in entries if e.kind == PointsChangeKind.REVERSE),
                refunded_minor=-sum(
                    r.amount_minor
                    for r in self.history.values()
                    if r.return_id and r.order_id == order_id
                ),
            )
        return found

    async def set_points_deltas(self, deltas: Mapping[int, int]) -> None:
        self.points_deltas.update(deltas)

    async def save_accounts(self, accounts: Sequence[MemberAccount]) -> None:
        for account in accounts:
            self.members[account.member_id].account = replace(account, changes=[])

    async def add_points_entries(self, entries: Sequence[PointsChange]) -> None:
        self.ledger += entries

    def account(self, member_id: str) -> MemberAccount:
        return self.members[member_id].account

    def ledger_sum(self, member_id: str) -> int:
        return sum(e.delta for e in self.ledger if e.member_id == member_id)


@dataclass
class FakeWork:
    store: FakePurchaseStore = field(default_factory=FakePurchaseStore)
    events: list[Message] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, message: Message, aggregate_id: str) -> None:
        self.events.append(message)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


def completed(order_id: str, member_id: str, total: int, minutes: int = 0) -> CompletedOrder:
    return CompletedOrder(
        order_id=order_id,
        member_id=member_id,
        channel_id="MALL",
        channel_kind=1,
        store_id="S1",
        currency="CNY",
        total_minor=total,
        categories=("PHONE", "CASE", "PHONE"),
        completed_at=T0 + timedelta(minutes=minutes),
    )


def returned(return_id: str, order_id: str, member_id: str, refund: int) -> ReceivedReturn:
    return ReceivedReturn(return_id, order_id, member_id, "S1", "CNY", refund, T0)


async def test_a_batch_earns_at_the_tier_before_each_order_and_upgrades_mid_batch():
    work = FakeWork()
    work.store.add_member("M1")
    # 1,500 yuan at BASIC (100/100 yuan), then 600 at BASIC (spend reaches SILVER after it),
    # then 1,000 at SILVER (120/100 yuan).
    batch = [completed("O1", "M1", 150_000), completed("O2", "M1", 60_000, 1)]
    batch.append(completed("O3", "M1", 100_000, 2))
    await purchases.record_completed_orders(work, batch)

    account = work.store.account("M1")
    assert [e.delta for e in work.store.ledger] == [1500, 600, 1200]
    assert [e.balance_after for e in work.store.ledger] == [1500, 2100, 3300]
    assert account.points_balance == 3300 == work.store.ledger_sum("M1")
    assert account.tier == Tier.SILVER
    assert account.lifetime_spend_minor == 310_000 and account.order_count == 3
    assert account.last_purchase_at == T0 + timedelta(minutes=2)
    assert sorted(work.store.points_deltas.values()) == [600, 1200, 1500]
    assert {(c.history_id, c.category) for c in work.store.categories} == {
        (h, c) for h in (1, 2, 3) for c in ("CASE", "PHONE")
    }
    tier_events = [e for e in work.events if isinstance(e, events_pb2.MemberTierChangedEvent)]
    assert [(e.previous_tier, e.tier) for e in tier_events] == [(Tier.BASIC, Tier.SILVER)]


async def test_an_order_delivered_twice_in_a_batch_or_again_later_earns_once():
    work = FakeWork()
    work.store.add_member("M1")
    await purchases.record_completed_orders(work, [completed("O1", "M1", 10_000)] * 2)
    await purchases.record_completed_orders(work, [completed("O1", "M1", 10_000)])
    assert [e.delta for e in work.store.ledger] == [100]
    assert work.store.account("M1").order_count == 1


async def test_orders_of_merged_members_go_to_the_survivor_and_guests_are_ignored():
    work = FakeWork()
    work.store.add_member("SURVIVOR")
    work.store.add_member("OLD", merged_into="SURVIVOR")
    batch = [completed("O1", "OLD", 10_000), completed("O2", "SURVIVOR", 20_000)]
    batch.append(completed("O3", "", 50_000))
    await purchases.record_completed_orders(work, batch)
    survivor = work.store.account("SURVIVOR")
    assert survivor.points_balance == 300 and survivor.order_count == 2
    assert {r.member_id for r in work.store.history.values()} == {"SURVIVOR"}


async def test_an_unknown_member_refuses_the_batch_before_anything_is_written():
    work = FakeWork()
    work.store.add_member("M1")
    with pytest.raises(NotFound):
        await purchases.record_completed_orders(
            work, [completed("O1", "M1", 10_000), completed("O2", "NOBODY", 10_000)]
        )
    assert work.store.history == {} and work.store.ledger == [] and work.callbacks == []


async def test_returns_in_one_batch_reverse_cumulatively_and_a_full_refund_exactly():
    work = FakeWork()
    work.store.add_member("M1")
    await purchases.record_completed_orders(work, [completed("O1", "M1", 333_300)])
    earned = work.store.account("M1").points_balance  # 3,333 at BASIC, then SILVER reached
    batch = [returned("R1", "O1", "M1", 111_100), returned("R2", "O1", "M1", 111_100)]
    batch += [returned("R2", "O1", "M1", 111_100), returned("R3", "O1", "M1", 111_100)]
    await purchases.record_returns(work, batch)
    reversals = [-e.delta for e in work.store.ledger if e.kind == PointsChangeKind.REVERSE]
    # floor(earned * refunded / total) at each step, never drifting: all of it at the end.
    assert reversals == [earned * 1 // 3, earned * 2 // 3 - earned // 3, earned - earned * 2 // 3]
    account = work.store.account("M1")
    assert account.points_balance == 0 == work.store.ledger_sum("M1")
    assert account.lifetime_spend_minor == 0
    assert account.tier == Tier.SILVER  # a return never lowers the tier


async def test_metrics_are_counted_only_after_commit():
    work = FakeWork()
    work.store.add_member("M1")
    before = purchases.metrics.PURCHASES_RECORDED.labels("order")._value.get()
    await purchases.record_completed_orders(work, [completed("O1", "M1", 10_000)])
    assert purchases.metrics.PURCHASES_RECORDED.labels("order")._value.get() == before
    for callback in work.callbacks:
        callback()
    assert purchases.metrics.PURCHASES_RECORDED.labels("order")._value.get() == before + 1
