"""Sales statistics: sales, refunds and commission by guide, store, city, province, channel
or flow over a time range, within the caller's scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.errors import InvalidArgument, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.distribution.adapters.repository import Repository
from services.distribution.adapters.statistics_queries import DIMENSIONS, StatisticsQueries
from services.distribution.domain.commission_rules import Channel, Flow, Role
from services.distribution.domain.organisation import Caller
from services.distribution.service_layer.organisation import visible_unit

CHANNEL_DIMENSION, FLOW_DIMENSION = 5, 6


@dataclass(frozen=True)
class StatisticsRow:
    key: str
    order_count: int
    sales_minor: int
    refunded_minor: int
    commission_minor: int


async def sales_statistics(
    uow: UnitOfWork,
    caller: Caller,
    *,
    dimension: int,
    start: datetime | None,
    end: datetime | None,
    unit_id: str,
    currency: str,
) -> list[StatisticsRow]:
    """Orders completed in [start, end) credited to a unit at or below ``unit_id`` (default:
    the caller's unit). An order is credited to its selling store for in-store sales, else
    to its guide's unit or pickup store, else to the HQ; its city and province are that
    unit's, else the delivery address's. Commission is net of claw-backs, and each row's own
    share: a guide's or a store's row counts what that guide or store earned (in every role),
    a city, province, channel or flow row the whole commission of its orders."""
    check = Validator()
    check.check(dimension in DIMENSIONS, "dimension", "must be a known dimension")
    check.check(start is not None, "start_time", "is required")
    check.check(end is not None, "end_time", "is required")
    if start is not None and end is not None:
        check.check(start < end, "end_time", "must be after start_time")
    check.check(len(currency) == 3 and currency.isupper(), "currency_code", "must be like CNY")
    check.raise_if_any()
    repo = Repository(uow.session)
    if unit_id:
        path = (await visible_unit(repo, caller, unit_id, "unit_id")).path
    elif caller.is_admin:
        raise InvalidArgument.field("unit_id", "the platform administrator must name a unit")
    else:
        path = caller.scope_path
    assert start is not None and end is not None
    rows = await StatisticsQueries(uow.session).sales(dimension, path, currency, start, end)
    return [
        StatisticsRow(
            _key_name(dimension, r.key),
            int(r.order_count),
            int(r.sales),
            int(r.refunded),
            int(r.commission),
        )
        for r in rows
    ]


def _key_name(dimension: int, raw: object) -> str:
    if dimension == CHANNEL_DIMENSION:
        return Channel(int(str(raw))).name
    if dimension == FLOW_DIMENSION:
        return Flow(int(str(raw))).name
    return str(raw)


@dataclass(frozen=True)
class OrderCommissionRow:
    role: Role
    beneficiary_kind: int
    beneficiary_id: str
    paid_minor: int
    clawed_minor: int


async def order_commissions(
    uow: UnitOfWork, caller: Caller, order_id: str
) -> tuple[int, str, list[OrderCommissionRow]]:
    """(flow, currency, per role and beneficiary: paid and clawed back) of one order."""
    check = Validator()
    check.check(bool(order_id), "order_id", "is required")
    check.raise_if_any()
    queries = StatisticsQueries(uow.session)
    facts = await queries.order_record(order_id)
    if facts is None:
        raise NotFound(
            f"no commissions recorded for order {order_id}",
            field="order_id",
            resource_type="order",
            resource_name=order_id,
        )
    caller.require(facts.scope_path, f"order {order_id}")
    rows = await queries.order_commissions(order_id)
    return (
        facts.flow,
        facts.currency,
        [
            OrderCommissionRow(
                Role(r.role), r.beneficiary_kind, r.beneficiary_id, int(r.paid), int(r.clawed)
            )
            for r in rows
        ],
    )
