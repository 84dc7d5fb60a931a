"""Brand-wide settings: commission rules (versioned) and distributors' minimum prices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.errors import Validator
from libs.unit_of_work import UnitOfWork
from services.distribution.adapters.repository import Repository
from services.distribution.domain.commission_rules import Flow, Role, Rule
from services.distribution.domain.organisation import Caller
from services.distribution.service_layer.organisation import visible_unit

MAX_RATE_BP = 10_000
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class NewRule:
    hq_id: str
    flow: int
    role: int
    rate_bp: int | None
    fixed_minor: int | None
    currency: str
    saved_shipping_minor: int
    saved_shipping_currency: str
    effective_from: datetime | None


def _check_currency(check: Validator, field: str, currency: str) -> None:
    check.check(
        len(currency) == 3 and currency.isalpha() and currency.isupper(),
        field,
        "must be an ISO 4217 code such as CNY",
    )


def validate_rule(new: NewRule) -> None:
    check = Validator()
    check.check(bool(new.hq_id), "hq_id", "is required")
    check.check(new.flow in {int(f) for f in Flow if f != Flow.UNSPECIFIED}, "flow", "must be 1-5")
    check.check(new.role in {int(r) for r in Role}, "role", "must be a known role")
    if new.rate_bp is None and new.fixed_minor is None:
        check.add("rate_bp", "a rule needs rate_bp or fixed_amount")
    if new.rate_bp is not None:
        check.check(0 <= new.rate_bp <= MAX_RATE_BP, "rate_bp", f"must be 0-{MAX_RATE_BP}")
    if new.fixed_minor is not None:
        check.check(new.fixed_minor >= 0, "fixed_amount.amount_minor", "must not be negative")
        _check_currency(check, "fixed_amount.currency_code", new.currency)
    if new.role == Role.FULFILLING_FRANCHISEE:
        check.check(new.rate_bp is not None, "rate_bp", "the shipping share is a rate")
        check.check(
            new.saved_shipping_minor > 0,
            "saved_shipping_cost.amount_minor",
            "is required for the fulfilling franchisee's shipping share",
        )
        _check_currency(check, "saved_shipping_cost.currency_code", new.saved_shipping_currency)
    check.check(new.effective_from is not None, "effective_time", "is required")
    check.raise_if_any()


async def set_rule(uow: UnitOfWork, caller: Caller, new: NewRule) -> tuple[Rule, str]:
    """Add the next version of the rule of (flow, role); orders completed from its
    effective time on are paid under it. Versions are serialised by the primary key."""
    validate_rule(new)
    hq = await visible_unit(Repository(uow.session), caller, new.hq_id, "hq_id")
    caller.require_hq(hq.hq_id)
    repo = Repository(uow.session)
    assert new.effective_from is not None
    currency = new.currency if new.fixed_minor is not None else new.saved_shipping_currency
    rule = Rule(
        flow=Flow(new.flow),
        role=Role(new.role),
        rate_bp=new.rate_bp,
        fixed_minor=new.fixed_minor,
        effective_from=new.effective_from,
        version=await repo.next_rule_version(hq.hq_id, new.flow, new.role),
        saved_shipping_minor=new.saved_shipping_minor,
        currency=currency,
    )
    await repo.add_rule(hq.hq_id, rule)
    return rule, currency


async def list_rules(
    uow: UnitOfWork, caller: Caller, hq_id: str
) -> tuple[list[Rule], dict[tuple[int, int, int], str]]:
    repo = Repository(uow.session)
    hq = await visible_unit(repo, caller, hq_id, "hq_id")
    return await repo.rules(hq.hq_id)


async def set_minimum_price(
    uow: UnitOfWork, caller: Caller, hq_id: str, sku_code: str, minimum_minor: int, currency: str
) -> None:
    """The brand's lowest unit price a distributor may sell a SKU at (per currency)."""
    check = Validator()
    check.check(bool(hq_id), "hq_id", "is required")
    check.check(bool(sku_code.strip()), "sku_code", "is required")
    check.check(minimum_minor > 0, "minimum_unit_price.amount_minor", "must be positive")
    _check_currency(check, "minimum_unit_price.currency_code", currency)
    check.raise_if_any()
    repo = Repository(uow.session)
    hq = await visible_unit(repo, caller, hq_id, "hq_id")
    caller.require_hq(hq.hq_id)
    await repo.set_minimum_price(hq.hq_id, sku_code.strip(), currency, minimum_minor)
