"""What distribution writes about an order: its statistics record, what each role was paid
per line, the settlement entries (commission, rebate, claw-back), and how a return takes
back the returned share of each paid line. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from services.distribution.domain.commission_rules import (
    NOT_CLAWED_BACK,
    REBATE_ROLES,
    Beneficiary,
    CommissionPlan,
    PaidLine,
    Role,
    clawback_for_line,
)


class EntryKind(IntEnum):
    COMMISSION = 1
    REBATE = 2
    CLAWBACK = 3


@dataclass(frozen=True)
class Entry:
    """A settlement-ledger row; statements are sums of these, never stored balances."""

    hq_id: str
    beneficiary: Beneficiary
    period: str
    kind: EntryKind
    role: Role
    flow: int
    order_id: str
    amount_minor: int
    currency: str
    occurred_at: datetime
    return_id: str = ""


@dataclass
class PaidCommissionLine:
    """What one role was paid on one line of an order, and how much has come back."""

    order_id: str
    role: Role
    line_id: str
    beneficiary: Beneficiary
    quantity: int
    paid_minor: int
    returned_quantity: int = 0
    clawed_minor: int = 0


@dataclass(frozen=True)
class OrderRecord:
    """One row per completed order: proof it was applied once, and what statistics group
    by (the unit it is credited to, its place, flow and channel)."""

    order_id: str
    hq_id: str
    scope_path: str
    flow: int
    channel_kind: int
    guide_staff_id: str
    store_id: str
    province: str
    city: str
    currency: str
    total_minor: int
    commission_minor: int
    completed_at: datetime


@dataclass(frozen=True)
class PaidOrder:
    """What a return needs of an order that was paid."""

    order_id: str
    hq_id: str
    flow: int
    currency: str


def paid_lines(
    order_id: str, plan: CommissionPlan, quantities: dict[str, int]
) -> list[PaidCommissionLine]:
    """Every payout of the plan, line by line (zero amounts too: a later return reads them)."""
    return [
        PaidCommissionLine(
            order_id=order_id,
            role=payout.role,
            line_id=line_id,
            beneficiary=payout.beneficiary,
            quantity=quantities[line_id],
            paid_minor=amount,
        )
        for payout in plan.payouts
        for line_id, amount in payout.per_line.items()
    ]


def accrual_entries(
    hq_id: str,
    order_id: str,
    plan: CommissionPlan,
    period: str,
    currency: str,
    completed_at: datetime,
) -> list[Entry]:
    """One entry per paying role and beneficiary; franchisee shares are rebates."""
    return [
        Entry(
            hq_id=hq_id,
            beneficiary=p.beneficiary,
            period=period,
            kind=EntryKind.REBATE if p.role in REBATE_ROLES else EntryKind.COMMISSION,
            role=p.role,
            flow=int(plan.flow),
            order_id=order_id,
            amount_minor=p.total,
            currency=currency,
            occurred_at=completed_at,
        )
        for p in plan.payouts
        if p.total > 0
    ]


def take_back(
    lines: Sequence[PaidCommissionLine], returned: Sequence[tuple[str, int]]
) -> dict[tuple[Role, Beneficiary], int]:
    """Take back, per returned line and role, the returned share of what was paid: a line
    named with a positive quantity returns that many units, a line named with none returns
    whole, and a return that names no lines returns the whole order. Roles that keep their
    pay on returns are skipped. Updates ``lines`` (cumulative returned quantity and amount
    taken back) and answers the amount taken per role and beneficiary."""
    returning: dict[str, int] = defaultdict(int)
    whole: set[str] = set()
    for line_id, quantity in returned:
        if quantity > 0:
            returning[line_id] += quantity
        else:
            whole.add(line_id)
    taken: dict[tuple[Role, Beneficiary], int] = defaultdict(int)
    for line in sorted(lines, key=lambda line: (int(line.role), line.line_id)):
        if line.role in NOT_CLAWED_BACK:
            continue
        if not returned or line.line_id in whole:
            quantity = line.quantity
        else:
            quantity = returning.get(line.line_id, 0)
        if quantity <= 0:
            continue
        amount, now_returned = clawback_for_line(
            PaidLine(line.quantity, line.paid_minor, line.returned_quantity, line.clawed_minor),
            quantity,
        )
        line.returned_quantity = now_returned
        line.clawed_minor += amount
        taken[(line.role, line.beneficiary)] += amount
    return dict(taken)


def clawback_entries(
    hq_id: str,
    flow: int,
    order_id: str,
    return_id: str,
    taken: dict[tuple[Role, Beneficiary], int],
    period: str,
    currency: str,
    received_at: datetime,
) -> list[Entry]:
    return [
        Entry(
            hq_id=hq_id,
            beneficiary=who,
            period=period,
            kind=EntryKind.CLAWBACK,
            role=role,
            flow=flow,
            order_id=order_id,
            return_id=return_id,
            amount_minor=-amount,
            currency=currency,
            occurred_at=received_at,
        )
        for (role, who), amount in taken.items()
        if amount > 0
    ]
