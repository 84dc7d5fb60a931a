"""Stored-value e-card (储值卡) use cases. Each entry is idempotent by its request id (the
servicer runs them through run_idempotent); the balance never goes negative because every
debit is one conditional UPDATE (and a CHECK constraint backs it); each entry records the
balance after it, so the ledger sums to the balance."""

from __future__ import annotations

import uuid

from libs.errors import FailedPrecondition, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.member import metrics
from services.member.adapters.ledgers import StoredValueLedger
from services.member.adapters.member_repository import MemberRepository
from services.member.adapters.tables import Row
from services.member.domain.stored_value import (
    StoredValueEntryKind,
    check_refund,
    validate_amount,
    validate_recharge,
)
from services.member.service_layer.members import require_usable

MAX_REFERENCE_LENGTH = 100


def _check_reference(v: Validator, reference: str) -> None:
    v.check(
        len(reference) <= MAX_REFERENCE_LENGTH,
        "reference",
        f"must be at most {MAX_REFERENCE_LENGTH} characters",
    )


async def write_entry(
    uow: UnitOfWork,
    member_id: str,
    kind: StoredValueEntryKind,
    amount_minor: int,
    balance_after: int,
    *,
    payment_entry_id: uuid.UUID | None = None,
    reference: str = "",
) -> Row:
    """The ledger entry of a change already applied to the balance."""
    entry = await StoredValueLedger(uow.session).add_entry(
        member_id,
        kind,
        amount_minor,
        balance_after,
        payment_entry_id=payment_entry_id,
        reference=reference,
    )

    def count() -> None:
        metrics.STORED_VALUE_ENTRIES.labels(kind.name.lower()).inc()
        metrics.STORED_VALUE_AMOUNT.labels(kind.name.lower()).inc(abs(amount_minor))

    uow.after_commit(count)
    return entry


async def _credit(uow: UnitOfWork, member_id: str, amount_minor: int) -> int:
    balance = await StoredValueLedger(uow.session).credit(member_id, amount_minor)
    if balance is None:
        raise FailedPrecondition(f"member {member_id} is not active")
    return balance


async def recharge(
    uow: UnitOfWork, member_id: str, currency: str, amount_minor: int, reference: str
) -> Row:
    v = Validator()
    validate_recharge(v, currency, amount_minor)
    _check_reference(v, reference)
    v.raise_if_any()
    await require_usable(MemberRepository(uow.session), member_id)
    balance = await _credit(uow, member_id, amount_minor)
    return await write_entry(
        uow, member_id, StoredValueEntryKind.RECHARGE, amount_minor, balance, reference=reference
    )


async def pay(
    uow: UnitOfWork, member_id: str, currency: str, amount_minor: int, reference: str
) -> Row:
    """Debit the card; FAILED_PRECONDITION when the balance does not cover the amount."""
    v = Validator()
    validate_amount(v, currency, amount_minor)
    _check_reference(v, reference)
    v.raise_if_any()
    await require_usable(MemberRepository(uow.session), member_id)
    balance = await StoredValueLedger(uow.session).debit_if_covered(member_id, amount_minor)
    if balance is None:
        metrics.STORED_VALUE_REFUSED.inc()
        raise FailedPrecondition("the stored-value balance does not cover the payment")
    return await write_entry(
        uow, member_id, StoredValueEntryKind.PAYMENT, -amount_minor, balance, reference=reference
    )


async def refund(
    uow: UnitOfWork,
    member_id: str,
    payment_entry_id: str,
    currency: str,
    amount_minor: int,
    reference: str,
) -> Row:
    """Give back (part of) a payment of this member — or of a member merged into it, whose
    balance moved here with the merge, so the refund credits this (surviving) member's card
    and ledger. Refunds of one payment never exceed it (the payment row is locked while its
    refunds are summed)."""
    v = Validator()
    validate_amount(v, currency, amount_minor)
    _check_reference(v, reference)
    payment_uuid: uuid.UUID | None = None
    try:
        payment_uuid = uuid.UUID(payment_entry_id)
    except ValueError:
        v.add("payment_entry_id", "must be the entry id of a payment")
    v.raise_if_any()
    assert payment_uuid is not None
    repo = MemberRepository(uow.session)
    await require_usable(repo, member_id)
    ledger = StoredValueLedger(uow.session)
    payment = await ledger.lock_entry(payment_uuid)
    if (
        payment is None
        or payment.kind != int(StoredValueEntryKind.PAYMENT)
        or not await _answers_for(repo, member_id, str(payment.member_id))
    ):
        raise NotFound(
            f"payment {payment_entry_id} of member {member_id} does not exist",
            field="payment_entry_id",
            resource_type="stored_value_payment",
            resource_name=payment_entry_id,
        )
    refunded = await ledger.refunded(payment_uuid)
    check_refund(-int(payment.amount_minor), refunded, amount_minor)
    balance = await _credit(uow, member_id, amount_minor)
    return await write_entry(
        uow,
        member_id,
        StoredValueEntryKind.REFUND,
        amount_minor,
        balance,
        payment_entry_id=payment_uuid,
        reference=reference,
    )


async def _answers_for(repo: MemberRepository, member_id: str, payer_id: str) -> bool:
    """The member is the payer, or the member the payer was merged into."""
    if payer_id == member_id:
        return True
    return (await repo.require_active(payer_id)).member_id == member_id


async def list_entries(
    uow: UnitOfWork, member_id: str, limit: int, after_seq: int | None
) -> list[Row]:
    await MemberRepository(uow.session).require(member_id)
    return await StoredValueLedger(uow.session).entries(member_id, limit + 1, after_seq)


async def ledger_sum(uow: UnitOfWork, member_id: str) -> int:
    return await StoredValueLedger(uow.session).total(member_id)
