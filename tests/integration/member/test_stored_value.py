"""The stored-value e-card: idempotent entries, never negative under concurrency, refunds
bounded by their payment, a ledger that sums to the balance."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from omni.common.v1 import money_pb2
from omni.member.v1 import member_service_pb2 as pb

from libs.grpc_errors import field_violations
from tests.integration.member.conftest import cny, ledger_sums, register


async def test_fifty_concurrent_payments_on_a_balance_for_twenty_pay_exactly_twenty(
    stub, unique, member_service
):
    member_id = (await register(stub, unique)).member.member_id
    await stub.RechargeStoredValue(
        pb.RechargeStoredValueRequest(
            request_id=f"rc-{unique}", member_id=member_id, amount=cny(20 * 10_00)
        )
    )

    async def pay(i: int) -> grpc.StatusCode:
        try:
            await stub.PayWithStoredValue(
                pb.PayWithStoredValueRequest(
                    request_id=f"pay-{unique}-{i}", member_id=member_id, amount=cny(10_00)
                ),
                timeout=30,
            )
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            return error.code()

    outcomes = await asyncio.gather(*(pay(i) for i in range(50)))
    assert outcomes.count(grpc.StatusCode.OK) == 20
    assert outcomes.count(grpc.StatusCode.FAILED_PRECONDITION) == 30
    member = (await stub.GetMember(pb.GetMemberRequest(member_id=member_id))).member
    assert member.stored_value_balance.amount_minor == 0
    assert (await ledger_sums(member_service, member_id))[1] == 0
    entries = await stub.ListStoredValueEntries(
        pb.ListStoredValueEntriesRequest(member_id=member_id, page_size=100)
    )
    assert len(entries.entries) == 21


async def test_entries_are_idempotent_by_key_and_refunds_never_exceed_the_payment(
    stub, unique, member_service
):
    member_id = (await register(stub, unique)).member.member_id
    recharge = pb.RechargeStoredValueRequest(
        request_id=f"rc-{unique}", member_id=member_id, amount=cny(100_00), reference="POS-1"
    )
    first = await stub.RechargeStoredValue(recharge)
    retry = await stub.RechargeStoredValue(recharge)
    assert retry.entry.entry_id == first.entry.entry_id
    assert retry.entry.balance_after.amount_minor == 100_00

    paid = await stub.PayWithStoredValue(
        pb.PayWithStoredValueRequest(
            request_id=f"pay-{unique}", member_id=member_id, amount=cny(60_00)
        )
    )
    assert paid.entry.balance_after.amount_minor == 40_00
    refund = pb.RefundStoredValueRequest(
        request_id=f"rf-{unique}",
        member_id=member_id,
        payment_entry_id=paid.entry.entry_id,
        amount=cny(50_00),
    )
    refunded = await stub.RefundStoredValue(refund)
    assert refunded.entry.balance_after.amount_minor == 90_00
    assert (await stub.RefundStoredValue(refund)).entry.entry_id == refunded.entry.entry_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RefundStoredValue(
            pb.RefundStoredValueRequest(
                request_id=f"rf2-{unique}",
                member_id=member_id,
                payment_entry_id=paid.entry.entry_id,
                amount=cny(10_01),
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.PayWithStoredValue(
            pb.PayWithStoredValueRequest(
                request_id=f"pay-{unique}", member_id=member_id, amount=cny(1_00)
            )
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await ledger_sums(member_service, member_id))[1] == 90_00


@pytest.mark.parametrize(
    ("amount", "field"),
    [
        (money_pb2.Money(currency_code="CNY", amount_minor=-100), "amount.amount_minor"),
        (money_pb2.Money(currency_code="CNY", amount_minor=0), "amount.amount_minor"),
        (money_pb2.Money(currency_code="USD", amount_minor=100), "amount.currency_code"),
    ],
)
async def test_bad_amounts_are_invalid_argument_and_write_nothing(
    stub, unique, member_service, amount, field
):
    member_id = (await register(stub, unique)).member.member_id
    for call, request in (
        (
            stub.RechargeStoredValue,
            pb.RechargeStoredValueRequest(
                request_id=f"bad-rc-{unique}", member_id=member_id, amount=amount
            ),
        ),
        (
            stub.PayWithStoredValue,
            pb.PayWithStoredValueRequest(
                request_id=f"bad-pay-{unique}", member_id=member_id, amount=amount
            ),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [f for f, _ in field_violations(caught.value)]
    assert await ledger_sums(member_service, member_id) == (0, 0)


async def test_unknown_member_is_not_found(stub, unique):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RechargeStoredValue(
            pb.RechargeStoredValueRequest(
                request_id=f"nf-{unique}", member_id="M-NOPE", amount=cny(1_00)
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_payments_made_before_a_merge_are_refunded_by_the_survivor(
    stub, unique, member_service
):
    merged_id = (await register(stub, unique)).member.member_id
    survivor_id = (await register(stub, unique)).member.member_id
    await stub.RechargeStoredValue(
        pb.RechargeStoredValueRequest(
            request_id=f"rc-m-{unique}", member_id=merged_id, amount=cny(100_00)
        )
    )
    paid = await stub.PayWithStoredValue(
        pb.PayWithStoredValueRequest(
            request_id=f"pay-m-{unique}", member_id=merged_id, amount=cny(60_00)
        )
    )
    await stub.RechargeStoredValue(
        pb.RechargeStoredValueRequest(
            request_id=f"rc-s-{unique}", member_id=survivor_id, amount=cny(5_00)
        )
    )
    await stub.MergeMembers(
        pb.MergeMembersRequest(
            request_id=f"merge-sv-{unique}",
            surviving_member_id=survivor_id,
            merged_member_id=merged_id,
            reason="same person",
        )
    )

    def refund(request_id: str, member_id: str, amount: int) -> pb.RefundStoredValueRequest:
        return pb.RefundStoredValueRequest(
            request_id=request_id,
            member_id=member_id,
            payment_entry_id=paid.entry.entry_id,
            amount=cny(amount),
        )

    # The survivor now holds the merged card's 40.00 plus its own 5.00; a refund of the old
    # payment lands on the survivor's card and ledger.
    first = await stub.RefundStoredValue(refund(f"rf-m1-{unique}", survivor_id, 25_00))
    assert first.entry.member_id == survivor_id
    assert first.entry.balance_after.amount_minor == 70_00
    again = await stub.RefundStoredValue(refund(f"rf-m1-{unique}", survivor_id, 25_00))
    assert again.entry.entry_id == first.entry.entry_id
    assert again.entry.balance_after.amount_minor == 70_00
    # All refunds of the payment stay within it, before and after the merge alike.
    with pytest.raises(grpc.aio.AioRpcError) as too_much:
        await stub.RefundStoredValue(refund(f"rf-m2-{unique}", survivor_id, 35_01))
    assert too_much.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    rest = await stub.RefundStoredValue(refund(f"rf-m3-{unique}", survivor_id, 35_00))
    assert rest.entry.balance_after.amount_minor == 105_00
    # The merged record takes no commands (the error names the survivor).
    with pytest.raises(grpc.aio.AioRpcError) as merged:
        await stub.RefundStoredValue(refund(f"rf-m4-{unique}", merged_id, 1_00))
    assert merged.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert survivor_id in (merged.value.details() or "")
    # Someone else's payment is not the survivor's to refund.
    stranger = (await register(stub, unique)).member.member_id
    with pytest.raises(grpc.aio.AioRpcError) as not_theirs:
        await stub.RefundStoredValue(refund(f"rf-m5-{unique}", stranger, 1_00))
    assert not_theirs.value.code() == grpc.StatusCode.NOT_FOUND

    member = (await stub.GetMember(pb.GetMemberRequest(member_id=survivor_id))).member
    assert member.stored_value_balance.amount_minor == 105_00
    assert (await ledger_sums(member_service, survivor_id))[1] == 105_00
    assert (await ledger_sums(member_service, merged_id))[1] == 0
