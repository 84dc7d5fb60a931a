"""Order events from the broker → purchase history, points, tiers; redemption; merges that
keep every ledger summing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from omni.member.v1 import events_pb2 as ev
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb

from libs.grpc_errors import field_violations
from libs.testing.services import eventually
from tests.integration.member.conftest import (
    cny,
    ledger_sums,
    order_completed,
    register,
    return_received,
)


async def _member(stub, member_id: str):
    return (await stub.GetMember(pb.GetMemberRequest(member_id=member_id))).member


async def _wait_for(stub, member_id: str, predicate):
    async def probe():
        member = await _member(stub, member_id)
        assert predicate(member), member
        return member

    return await eventually(probe, timeout=30)


async def test_points_from_an_order_delivered_twice_are_counted_once(
    stub, unique, order_events_producer, member_service
):
    member_id = (await register(stub, unique)).member.member_id
    order_id = f"O-{unique}"
    event_id = await order_events_producer.publish(
        order_completed(order_id, member_id, 123_45), order_id
    )
    member = await _wait_for(stub, member_id, lambda m: m.points_balance > 0)
    assert member.points_balance == 123  # 1 point per yuan at BASIC, rounded down

    # The very same envelope again (relay crashed before marking it), then another event
    # about the same order with a new event id: neither earns again.
    await order_events_producer.redeliver(event_id)
    await order_events_producer.publish(order_completed(order_id, member_id, 123_45), order_id)
    # A later order proves the consumer has moved past both duplicates.
    await order_events_producer.publish(
        order_completed(f"O2-{unique}", member_id, 10_00), f"O2-{unique}"
    )
    member = await _wait_for(stub, member_id, lambda m: m.order_count == 2)
    assert member.points_balance == 133
    entries = await stub.ListPointsEntries(pb.ListPointsEntriesRequest(member_id=member_id))
    assert [(e.kind, e.delta, e.order_id) for e in entries.entries] == [
        (ev.POINTS_CHANGE_KIND_EARN, 123, order_id),
        (ev.POINTS_CHANGE_KIND_EARN, 10, f"O2-{unique}"),
    ]
    assert (await ledger_sums(member_service, member_id))[0] == member.points_balance


async def test_returns_reverse_points_proportionally_and_history_pages(
    stub, unique, order_events_producer, member_service
):
    member_id = (await register(stub, unique)).member.member_id
    order_id = f"OR-{unique}"
    await order_events_producer.publish(
        order_completed(order_id, member_id, 300_00, ("PHONE", "CASE")), order_id
    )
    await _wait_for(stub, member_id, lambda m: m.points_balance == 300)
    # A third of the order back, then the rest: 100 then 200 points reversed.
    await order_events_producer.publish(
        return_received(f"R1-{unique}", order_id, member_id, 100_00), order_id
    )
    await _wait_for(stub, member_id, lambda m: m.points_balance == 200)
    await order_events_producer.publish(
        return_received(f"R2-{unique}", order_id, member_id, 200_00), order_id
    )
    member = await _wait_for(stub, member_id, lambda m: m.points_balance == 0)
    assert member.lifetime_spend.amount_minor == 0
    assert (await ledger_sums(member_service, member_id))[0] == 0

    first = await stub.ListPurchaseRecords(
        pb.ListPurchaseRecordsRequest(member_id=member_id, page_size=2)
    )
    rest = await stub.ListPurchaseRecords(
        pb.ListPurchaseRecordsRequest(member_id=member_id, page_token=first.next_page_token)
    )
    records = [*first.records, *rest.records]
    assert rest.next_page_token == ""
    assert sorted((r.kind, r.amount.amount_minor, r.points_delta) for r in records) == [
        (m.PURCHASE_KIND_ORDER, 300_00, 300),
        (m.PURCHASE_KIND_RETURN, -200_00, -200),
        (m.PURCHASE_KIND_RETURN, -100_00, -100),
    ]
    order = next(r for r in records if r.kind == m.PURCHASE_KIND_ORDER)
    assert sorted(order.category_codes) == ["CASE", "PHONE"]


async def test_spend_upgrades_the_tier_and_the_new_rate_applies_to_later_orders(
    stub, unique, order_events_producer
):
    member_id = (await register(stub, unique)).member.member_id
    await order_events_producer.publish(
        order_completed(f"T1-{unique}", member_id, 2_500_00), f"T1-{unique}"
    )
    member = await _wait_for(stub, member_id, lambda m: m.order_count == 1)
    # Earned at BASIC (the tier when the order was placed), then upgraded to SILVER.
    assert (member.points_balance, member.tier) == (2_500, ev.MEMBER_TIER_SILVER)
    await order_events_producer.publish(
        order_completed(f"T2-{unique}", member_id, 100_00), f"T2-{unique}"
    )
    member = await _wait_for(stub, member_id, lambda m: m.order_count == 2)
    assert member.points_balance == 2_500 + 120


async def test_redeem_checks_the_balance(stub, unique, order_events_producer, member_service):
    member_id = (await register(stub, unique)).member.member_id
    await order_events_producer.publish(
        order_completed(f"RD-{unique}", member_id, 50_00), f"RD-{unique}"
    )
    await _wait_for(stub, member_id, lambda m: m.points_balance == 50)
    redeemed = await stub.RedeemPoints(
        pb.RedeemPointsRequest(request_id=f"rd-{unique}", member_id=member_id, points=30)
    )
    assert redeemed.entry.balance_after == 20
    again = await stub.RedeemPoints(
        pb.RedeemPointsRequest(request_id=f"rd-{unique}", member_id=member_id, points=30)
    )
    assert again.entry.entry_id == redeemed.entry.entry_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RedeemPoints(
            pb.RedeemPointsRequest(request_id=f"rd2-{unique}", member_id=member_id, points=21)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await stub.RedeemPoints(
            pb.RedeemPointsRequest(request_id=f"rd3-{unique}", member_id=member_id, points=-5)
        )
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(negative.value)] == ["points"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.RedeemPoints(
            pb.RedeemPointsRequest(request_id=f"rd4-{unique}", member_id="M-NOPE", points=5)
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    member = await _member(stub, member_id)
    assert member.points_balance == 20
    assert (await ledger_sums(member_service, member_id))[0] == 20


async def test_a_merge_moves_everything_and_keeps_every_ledger_summing(
    stub, unique, order_events_producer, member_service
):
    survivor = (await register(stub, unique)).member.member_id
    merged = (await register(stub, unique)).member.member_id
    long_ago = datetime.now(UTC) - timedelta(days=3)
    await order_events_producer.publish(
        order_completed(f"MS-{unique}", survivor, 40_00, when=long_ago), f"MS-{unique}"
    )
    await order_events_producer.publish(
        order_completed(f"MM-{unique}", merged, 60_00, (f"CAT{unique}",)), f"MM-{unique}"
    )
    await _wait_for(stub, merged, lambda m: m.points_balance == 60)
    await _wait_for(stub, survivor, lambda m: m.points_balance == 40)
    await stub.RechargeStoredValue(
        pb.RechargeStoredValueRequest(
            request_id=f"mr-{unique}", member_id=merged, amount=cny(500_00)
        )
    )
    await stub.RechargeStoredValue(
        pb.RechargeStoredValueRequest(
            request_id=f"sr-{unique}", member_id=survivor, amount=cny(100_00)
        )
    )

    result = await stub.MergeMembers(
        pb.MergeMembersRequest(
            request_id=f"merge-{unique}",
            surviving_member_id=survivor,
            merged_member_id=merged,
            reason="duplicate registration",
        )
    )
    assert (result.merge.points_moved, result.merge.stored_value_moved.amount_minor) == (
        60,
        500_00,
    )
    assert result.merge.purchase_records_moved == 1
    kept = result.member
    assert (kept.points_balance, kept.stored_value_balance.amount_minor) == (100, 600_00)
    assert (kept.order_count, kept.lifetime_spend.amount_minor) == (2, 100_00)
    assert await ledger_sums(member_service, survivor) == (100, 600_00)
    assert await ledger_sums(member_service, merged) == (0, 0)

    # A return of the merged member's order, still addressed to its old id, reaches the
    # survivor and reverses there.
    await order_events_producer.publish(
        return_received(f"MR-{unique}", f"MM-{unique}", merged, 60_00), f"MM-{unique}"
    )
    await _wait_for(stub, survivor, lambda m: m.points_balance == 40)
    assert (await ledger_sums(member_service, survivor))[0] == 40
    history = await stub.ListPurchaseRecords(pb.ListPurchaseRecordsRequest(member_id=survivor))
    assert len(history.records) == 3

    # Segments see the moved history under the survivor.
    bought = m.SegmentRule(
        all_of=[
            m.SegmentCondition(
                category_purchase=m.CategoryPurchase(
                    bought_category_code=f"CAT{unique}", within_days=30
                )
            )
        ]
    )
    segment = await stub.EvaluateSegment(pb.EvaluateSegmentRequest(rule=bought))
    assert list(segment.member_ids) == [survivor]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RedeemPoints(
            pb.RedeemPointsRequest(request_id=f"old-{unique}", member_id=merged, points=1)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
