"""The stored-value e-card (储值卡): recharge, pay, refund, never negative.

The balance itself is guarded in PostgreSQL (a conditional update and a CHECK >= 0) because
concurrent payments race; these rules say what a well formed entry is.
"""

from __future__ import annotations

from enum import IntEnum

from libs.errors import FailedPrecondition, InvalidArgument, Validator
from services.member.domain.points import PLATFORM_CURRENCY

# One recharge at most 50,000.00 yuan (prepaid-card rules cap single loads).
MAX_RECHARGE_MINOR = 50_000_00


class StoredValueEntryKind(IntEnum):
    RECHARGE = 1
    PAYMENT = 2
    REFUND = 3
    MERGE_IN = 4
    MERGE_OUT = 5


def validate_amount(
    v: Validator, currency_code: str, amount_minor: int, *, field: str = "amount"
) -> None:
    v.check(
        currency_code == PLATFORM_CURRENCY,
        f"{field}.currency_code",
        f"must be {PLATFORM_CURRENCY} (the card's currency)",
    )
    v.check(amount_minor > 0, f"{field}.amount_minor", "must be positive")


def validate_recharge(v: Validator, currency_code: str, amount_minor: int) -> None:
    validate_amount(v, currency_code, amount_minor)
    v.check(
        amount_minor <= MAX_RECHARGE_MINOR,
        "amount.amount_minor",
        f"must be at most {MAX_RECHARGE_MINOR} per recharge",
    )


def check_refund(payment_minor: int, refunded_minor: int, refund_minor: int) -> None:
    """A refund gives back (part of) one payment; all its refunds never exceed it."""
    if refund_minor <= 0:
        raise InvalidArgument.field("amount.amount_minor", "must be positive")
    if refunded_minor + refund_minor > payment_minor:
        raise FailedPrecondition(
            f"refund exceeds the payment: paid {payment_minor}, refunded {refunded_minor}, "
            f"asked {refund_minor}"
        )
