"""Settlement: statements per guide, store and dealer per period, and closing periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import events_pb2

from libs.errors import FailedPrecondition, InvalidArgument, NotFound, Validator
from libs.pagination import decode_token, encode_token
from libs.unit_of_work import UnitOfWork
from services.distribution import metrics
from services.distribution.adapters.proto import money, timestamp
from services.distribution.adapters.repository import Repository
from services.distribution.adapters.settlement_repository import SettlementRepository
from services.distribution.adapters.tables import Row
from services.distribution.domain.commission_rules import BeneficiaryKind
from services.distribution.domain.organisation import Caller
from services.distribution.domain.settlement import (
    FIRST_PERIOD,
    LAST_PERIOD,
    is_period,
    period_end,
)
from services.distribution.service_layer.organisation import visible_unit

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
PERIOD_OPEN, PERIOD_CLOSED = 1, 2
PERIOD_RULE = f"must be a month YYYY-MM from {FIRST_PERIOD} to {LAST_PERIOD}"


@dataclass(frozen=True)
class StatementTotals:
    commission: int
    rebate: int
    clawback: int
    entry_count: int

    @property
    def net(self) -> int:
        return self.commission + self.rebate + self.clawback


@dataclass(frozen=True)
class StatementPage:
    status: int
    totals: StatementTotals
    entries: list[Row]
    next_page_token: str


async def _beneficiary_scope(
    repo: Repository, caller: Caller, kind: int, beneficiary_id: str
) -> tuple[str, str]:
    """(path, hq id) of the unit a beneficiary belongs to, checked against the caller."""
    if kind == BeneficiaryKind.GUIDE:
        member = await repo.staff(beneficiary_id)
        if member is None:
            raise NotFound(
                f"guide {beneficiary_id} does not exist",
                field="beneficiary_id",
                resource_type="staff",
                resource_name=beneficiary_id,
            )
        unit = await repo.unit(member.unit_id)
        if unit is None:  # pragma: no cover - foreign key
            raise NotFound(f"guide {beneficiary_id} has no unit")
        caller.require(unit.path, f"guide {beneficiary_id}")
    else:
        unit = await visible_unit(repo, caller, beneficiary_id, "beneficiary_id")
    return unit.path, unit.hq_id


async def get_statement(
    uow: UnitOfWork,
    caller: Caller,
    *,
    kind: int,
    beneficiary_id: str,
    period: str,
    currency: str,
    page_size: int,
    page_token: str,
) -> StatementPage:
    """A beneficiary's statement: its totals (kept by the database with every entry) equal
    the sum of its entries; a closed period's totals are the ones frozen when it closed."""
    check = Validator()
    check.check(
        kind in {int(k) for k in BeneficiaryKind},
        "beneficiary_kind",
        "must be GUIDE, STORE or DEALER",
    )
    check.check(bool(beneficiary_id), "beneficiary_id", "is required")
    check.check(is_period(period), "period", PERIOD_RULE)
    check.check(len(currency) == 3 and currency.isupper(), "currency_code", "must be like CNY")
    check.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"must be 0-{MAX_PAGE_SIZE}")
    check.raise_if_any()
    after = decode_token(page_token, 1, (int,))
    repo = Repository(uow.session)
    _path, hq_id = await _beneficiary_scope(repo, caller, kind, beneficiary_id)
    closed = period in await repo.closed_periods(hq_id)
    statements = SettlementRepository(uow.session)
    frozen = None
    if closed:
        frozen = await statements.frozen_totals(kind, beneficiary_id, period, currency)
    if frozen is None:
        frozen = await statements.running_totals(kind, beneficiary_id, period, currency)
    totals = (
        StatementTotals(
            frozen.commission_minor, frozen.rebate_minor, frozen.clawback_minor, frozen.entry_count
        )
        if frozen is not None
        else StatementTotals(0, 0, 0, 0)
    )
    size = page_size or DEFAULT_PAGE_SIZE
    rows = await statements.entries(
        kind, beneficiary_id, period, currency, int(after[0]) if after else 0, size + 1
    )
    token = encode_token([int(rows[size - 1].entry_id)]) if len(rows) > size else ""
    return StatementPage(PERIOD_CLOSED if closed else PERIOD_OPEN, totals, list(rows[:size]), token)


def statement_to_proto(
    kind: int, beneficiary_id: str, period: str, currency: str, status: int, t: StatementTotals
) -> pb.Statement:
    return pb.Statement(
        beneficiary_kind=pb.BeneficiaryKind.ValueType(kind),
        beneficiary_id=beneficiary_id,
        period=period,
        status=pb.PeriodStatus.ValueType(status),
        commission_total=money(t.commission, currency),
        rebate_total=money(t.rebate, currency),
        clawback_total=money(t.clawback, currency),
        net_total=money(t.net, currency),
        entry_count=t.entry_count,
    )


async def close_period(uow: UnitOfWork, caller: Caller, hq_id: str, period: str) -> int:
    """Freeze every statement of an HQ's tree for a finished period. Closing waits for the
    bookings in flight (advisory lock) so none lands in the period after it closed."""
    check = Validator()
    check.check(bool(hq_id), "hq_id", "is required")
    check.check(is_period(period), "period", PERIOD_RULE)
    check.raise_if_any()
    repo = Repository(uow.session)
    hq = await visible_unit(repo, caller, hq_id, "hq_id")
    caller.require_hq(hq.hq_id)
    if hq.unit_id != hq.hq_id:
        raise InvalidArgument.field("hq_id", "must name an HQ")
    if period_end(period) > datetime.now(UTC):
        raise FailedPrecondition(f"period {period} has not ended yet")
    await repo.lock_periods_exclusive(hq.hq_id)
    if period in await repo.closed_periods(hq.hq_id):
        raise FailedPrecondition(f"period {period} is already closed")
    frozen = await SettlementRepository(uow.session).close(hq.hq_id, period, caller.staff_id)
    close_time = timestamp(datetime.now(UTC))
    for row in frozen:
        totals = StatementTotals(
            row.commission_minor, row.rebate_minor, row.clawback_minor, row.entry_count
        )
        uow.emit(
            events_pb2.StatementClosedEvent(
                statement=statement_to_proto(
                    row.beneficiary_kind,
                    row.beneficiary_id,
                    period,
                    row.currency,
                    PERIOD_CLOSED,
                    totals,
                ),
                close_time=close_time,
            ),
            aggregate_id=f"{row.beneficiary_kind}:{row.beneficiary_id}",
        )
    closed_count = len(frozen)
    uow.after_commit(lambda: metrics.STATEMENTS_CLOSED.inc(closed_count))
    return closed_count
