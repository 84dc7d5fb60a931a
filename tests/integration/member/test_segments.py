"""Segments evaluated against real history, and exports limited to consenting members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from omni.member.v1 import events_pb2 as ev
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb

from libs.grpc_errors import field_violations
from libs.testing.services import eventually
from tests.integration.member.conftest import PII, order_completed, register


def _rule(*conditions: m.SegmentCondition) -> m.SegmentRule:
    return m.SegmentRule(all_of=list(conditions))


async def _all_ids(stub, rule: m.SegmentRule, page_size: int = 2) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page = await stub.EvaluateSegment(
            pb.EvaluateSegmentRequest(rule=rule, page_size=page_size, page_token=token)
        )
        ids += page.member_ids
        token = page.next_page_token
        if not token:
            return ids


async def test_bought_x_not_y_within_days_by_owner_guide_with_consenting_export(
    stub, unique, order_events_producer
):
    guide = f"SEG-{unique}"
    guided = {"source": ev.SIGN_UP_SOURCE_GUIDE_ASSISTED, "guide_staff_id": guide}
    phone_only = (
        await register(stub, unique, store_id="SH01", consents=[m.CONTACT_CHANNEL_SMS], **guided)
    ).member
    phone_and_case = (await register(stub, unique, store_id="SH01", **guided)).member
    old_phone = (
        await register(stub, unique, store_id="SH01", consents=[m.CONTACT_CHANNEL_SMS], **guided)
    ).member
    other_guide = (await register(stub, unique, consents=[m.CONTACT_CHANNEL_SMS])).member
    no_consent = (await register(stub, unique, store_id="SH01", **guided)).member

    now = datetime.now(UTC)
    orders = [
        (phone_only, ("PHONE",), now - timedelta(days=3)),
        (phone_and_case, ("PHONE",), now - timedelta(days=5)),
        (phone_and_case, ("CASE",), now - timedelta(days=1)),
        (old_phone, ("PHONE",), now - timedelta(days=120)),
        (other_guide, ("PHONE",), now - timedelta(days=2)),
        (no_consent, ("PHONE",), now - timedelta(days=2)),
    ]
    for i, (member, categories, when) in enumerate(orders):
        order_id = f"SG{i}-{unique}"
        await order_events_producer.publish(
            order_completed(order_id, member.member_id, 999_00, categories, when), order_id
        )

    rule = _rule(
        m.SegmentCondition(
            category_purchase=m.CategoryPurchase(
                bought_category_code="PHONE", within_days=30, not_bought_category_code="CASE"
            )
        ),
        m.SegmentCondition(owner_guide_staff_id=guide),
    )

    async def evaluated() -> list[str]:
        ids = await _all_ids(stub, rule)
        assert sorted(ids) == sorted([phone_only.member_id, no_consent.member_id])
        return ids

    await eventually(evaluated, timeout=30)
    first = await stub.EvaluateSegment(pb.EvaluateSegmentRequest(rule=rule, page_size=1))
    assert first.total_size == 2

    masked = await stub.ExportSegmentContacts(
        pb.ExportSegmentContactsRequest(rule=rule, channel=m.CONTACT_CHANNEL_SMS)
    )
    assert [c.member_id for c in masked.contacts] == [phone_only.member_id]
    assert masked.contacts[0].pii_masked and "****" in masked.contacts[0].phone
    full = await stub.ExportSegmentContacts(
        pb.ExportSegmentContactsRequest(rule=rule, channel=m.CONTACT_CHANNEL_SMS), metadata=PII
    )
    assert full.contacts[0].phone == phone_only.phone

    # RFM and tier: 1-2 orders within 90 days is NEW, a last order 91-365 days ago AT_RISK.
    new_and_guided = _rule(
        m.SegmentCondition(rfm_group=m.RFM_GROUP_NEW),
        m.SegmentCondition(tier=ev.MEMBER_TIER_BASIC),
        m.SegmentCondition(owner_store_id="SH01"),
        m.SegmentCondition(owner_guide_staff_id=guide),
    )
    at_risk = _rule(
        m.SegmentCondition(rfm_group=m.RFM_GROUP_AT_RISK),
        m.SegmentCondition(owner_guide_staff_id=guide),
    )

    async def grouped() -> None:
        # Orders of different members may sit on different partitions: wait for all.
        assert sorted(await _all_ids(stub, new_and_guided)) == sorted(
            [phone_only.member_id, phone_and_case.member_id, no_consent.member_id]
        )
        assert await _all_ids(stub, at_risk) == [old_phone.member_id]

    await eventually(grouped, timeout=30)


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        (m.SegmentCondition(), "rule.all_of[0]"),
        (
            m.SegmentCondition(
                category_purchase=m.CategoryPurchase(bought_category_code="PHONE", within_days=0)
            ),
            "rule.all_of[0].category_purchase.within_days",
        ),
        (
            m.SegmentCondition(category_purchase=m.CategoryPurchase(within_days=3)),
            "rule.all_of[0].category_purchase.bought_category_code",
        ),
        (m.SegmentCondition(tier=99), "rule.all_of[0].tier"),  # type: ignore[arg-type]
    ],
)
async def test_bad_rules_are_invalid_argument_naming_the_field(stub, condition, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.EvaluateSegment(pb.EvaluateSegmentRequest(rule=_rule(condition)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(caught.value)]
