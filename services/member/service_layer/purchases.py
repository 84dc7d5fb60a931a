"""Purchase history from order events, and what it drives: points earned on completed
orders and reversed on returns, spend and tier upgrades, RFM statistics.

The consumer hands over every completed order (or return) of a batch at once; the use case
locks the members' accounts once, records the history rows that are new, applies them in
event order to the accounts (domain/purchases.py) and writes the results set-based.

Applied once per order / return: the consumer's inbox drops redelivered events, and the
unique indexes on (order_id) / (return_id) drop a second event about the same fact."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.protobuf.message import Message
from omni.member.v1 import events_pb2

from libs.errors import NotFound
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.proto import now_timestamp
from services.member.adapters.purchase_history import PurchaseHistory
from services.member.adapters.tables import Row
from services.member.domain.purchases import (
    CategoryRow,
    MemberAccount,
    OrderPoints,
    OrderRecord,
    PointsChange,
    PurchaseRecord,
    TierChange,
)


class PurchaseStore(Protocol):
    """Where the purchase use cases read and write (adapters/purchase_store.py)."""

    async def lock_accounts(self, member_ids: Collection[str]) -> dict[str, MemberAccount]: ...
    async def add_orders(self, records: Sequence[PurchaseRecord]) -> dict[str, int]: ...
    async def add_returns(self, records: Sequence[PurchaseRecord]) -> dict[str, int]: ...
    async def add_categories(self, rows: Sequence[CategoryRow]) -> None: ...
    async def order_records(self, order_ids: Collection[str]) -> dict[str, OrderRecord]: ...
    async def order_points(self, order_ids: Collection[str]) -> dict[str, OrderPoints]: ...
    async def set_points_deltas(self, deltas: Mapping[int, int]) -> None: ...
    async def save_accounts(self, accounts: Sequence[MemberAccount]) -> None: ...
    async def add_points_entries(self, entries: Sequence[PointsChange]) -> None: ...


class PurchaseWork(Protocol):
    """The unit of work of a batch: the store, the events it causes, metrics after commit."""

    @property
    def store(self) -> PurchaseStore: ...

    def emit(self, message: Message, aggregate_id: str) -> None: ...
    def after_commit(self, callback: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class CompletedOrder:
    order_id: str
    member_id: str
    channel_id: str
    channel_kind: int
    store_id: str
    currency: str
    total_minor: int
    categories: tuple[str, ...]
    completed_at: datetime


@dataclass(frozen=True)
class ReceivedReturn:
    return_id: str
    order_id: str
    member_id: str
    store_id: str
    currency: str
    refund_minor: int
    received_at: datetime


async def record_completed_orders(work: PurchaseWork, orders: Sequence[CompletedOrder]) -> None:
    """Per order, in order: earn points at the member's tier rate (the tier before this
    order), add the spend, then upgrade the tier if the spend reaches a higher one. Guest
    orders are ignored; an order of a merged member goes to the survivor; an unknown member
    is NOT_FOUND (the consumer isolates and dead-letters that event)."""
    orders = [o for o in orders if o.member_id]
    if not orders:
        return
    accounts = await work.store.lock_accounts({o.member_id for o in orders})
    _require_known([o.member_id for o in orders], accounts)
    recorded = await work.store.add_orders(
        [
            PurchaseRecord(
                member_id=accounts[o.member_id].member_id,
                order_id=o.order_id,
                return_id="",
                channel_id=o.channel_id,
                channel_kind=o.channel_kind,
                store_id=o.store_id,
                amount_minor=o.total_minor,
                currency=o.currency,
                categories=tuple(sorted(set(o.categories))),
                occurred_at=o.completed_at,
            )
            for o in orders
        ]
    )
    categories: list[CategoryRow] = []
    deltas: dict[int, int] = {}
    touched: dict[str, MemberAccount] = {}
    recorded_count = 0
    for o in orders:
        history_id = recorded.pop(o.order_id, None)
        if history_id is None:
            continue  # recorded before (or twice in this batch): applied once
        recorded_count += 1
        account = accounts[o.member_id]
        touched[account.member_id] = account
        earned = account.complete_order(o.order_id, o.currency, o.total_minor, o.completed_at)
        if earned:
            deltas[history_id] = earned
        categories += [
            CategoryRow(history_id, category, account.member_id, o.completed_at)
            for category in sorted(set(o.categories))
        ]
    if not touched:
        return
    await work.store.add_categories(categories)
    await work.store.set_points_deltas(deltas)
    await _save(work, list(touched.values()))
    work.after_commit(lambda: metrics.PURCHASES_RECORDED.labels("order").inc(recorded_count))


async def record_returns(work: PurchaseWork, returns: Sequence[ReceivedReturn]) -> None:
    """Per return, in order: reverse the order's points in proportion to the refunded share
    (cumulative over all its returns) and lower the spend; the tier is not lowered. A return
    of an order never recorded is kept in the history without effect."""
    returns = [r for r in returns if r.member_id]
    if not returns:
        return
    accounts = await work.store.lock_accounts({r.member_id for r in returns})
    _require_known([r.member_id for r in returns], accounts)
    order_ids = {r.order_id for r in returns}
    orders = await work.store.order_records(order_ids)
    so_far = await work.store.order_points(order_ids)
    recorded = await work.store.add_returns(
        [
            PurchaseRecord(
                member_id=accounts[r.member_id].member_id,
                order_id=r.order_id,
                return_id=r.return_id,
                channel_id=order.channel_id if (order := orders.get(r.order_id)) else "",
                channel_kind=order.channel_kind if order else 0,
                store_id=r.store_id,
                amount_minor=-r.refund_minor,
                currency=r.currency,
                categories=(),
                occurred_at=r.received_at,
            )
            for r in returns
        ]
    )
    deltas: dict[int, int] = {}
    touched: dict[str, MemberAccount] = {}
    recorded_count = 0
    for r in returns:
        history_id = recorded.pop(r.return_id, None)
        if history_id is None:
            continue
        recorded_count += 1
        account = accounts[r.member_id]
        touched[account.member_id] = account
        reversal = account.receive_return(
            orders.get(r.order_id),
            so_far.setdefault(r.order_id, OrderPoints()),
            order_id=r.order_id,
            return_id=r.return_id,
            currency=r.currency,
            refund_minor=r.refund_minor,
        )
        if reversal:
            deltas[history_id] = -reversal
    if not touched:
        return
    await work.store.set_points_deltas(deltas)
    await _save(work, list(touched.values()))
    work.after_commit(lambda: metrics.PURCHASES_RECORDED.labels("return").inc(recorded_count))


def _require_known(member_ids: Sequence[str], accounts: Mapping[str, MemberAccount]) -> None:
    for member_id in member_ids:
        if member_id not in accounts:
            raise NotFound(
                f"member {member_id!r} does not exist",
                field="member_id",
                resource_type="member",
                resource_name=member_id,
            )


async def _save(work: PurchaseWork, accounts: Sequence[MemberAccount]) -> None:
    """Write the accounts and their ledger entries, announce every change in order."""
    await work.store.save_accounts(accounts)
    await work.store.add_points_entries(
        [c for a in accounts for c in a.changes if isinstance(c, PointsChange)]
    )
    changed_at = now_timestamp()
    points: list[PointsChange] = []
    tiers: list[TierChange] = []
    for account in accounts:
        for change in account.changes:
            if isinstance(change, PointsChange):
                points.append(change)
                work.emit(
                    events_pb2.MemberPointsChangedEvent(
                        member_id=change.member_id,
                        kind=int(change.kind),  # type: ignore[arg-type]
                        delta=change.delta,
                        balance=change.balance_after,
                        order_id=change.order_id,
                        return_id=change.return_id,
                        change_time=changed_at,
                    ),
                    aggregate_id=change.member_id,
                )
            else:
                tiers.append(change)
                work.emit(
                    events_pb2.MemberTierChangedEvent(
                        member_id=change.member_id,
                        previous_tier=int(change.previous),  # type: ignore[arg-type]
                        tier=int(change.tier),  # type: ignore[arg-type]
                        change_time=changed_at,
                    ),
                    aggregate_id=change.member_id,
                )
        account.changes.clear()

    def count() -> None:
        for change in points:
            kind = change.kind.name.lower()
            metrics.POINTS_CHANGED.labels(kind).inc()
            metrics.POINTS_VOLUME.labels(kind).inc(abs(change.delta))
        for tier in tiers:
            metrics.TIER_UPGRADES.labels(tier.tier.name.lower()).inc()

    work.after_commit(count)


async def list_records(
    uow: UnitOfWork, member_id: str, limit: int, after: tuple[datetime, int] | None
) -> list[Row]:
    """Newest first, across all channels, orders and returns."""
    await MemberRepository(uow.session).require(member_id)
    return await PurchaseHistory(uow.session).records(member_id, limit + 1, after)
