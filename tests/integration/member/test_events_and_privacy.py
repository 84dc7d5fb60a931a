"""What leaves the service: events through the outbox (without personal data) and logs
(without personal data)."""

from __future__ import annotations

import logging
import uuid

from aiokafka import AIOKafkaConsumer
from omni.member.v1 import events_pb2 as ev
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb

from libs.messaging import decode_envelope
from libs.testing.services import eventually
from tests.integration.member.conftest import order_completed, register


async def test_member_events_reach_the_member_topic_without_personal_data(
    stub, unique, test_stack, order_events_producer, caplog
):
    caplog.set_level(logging.DEBUG)
    created = await register(
        stub,
        unique,
        name="欧阳娜娜",
        source=ev.SIGN_UP_SOURCE_GUIDE_ASSISTED,
        guide_staff_id="G-EV",
        store_id="SH01",
        identity=m.ChannelIdentity(
            kind=ev.IDENTITY_KIND_WECHAT_OPENID, namespace="wxapp", external_id=f"oSECRET{unique}"
        ),
    )
    member_id, phone = created.member.member_id, created.member.phone
    other = (await register(stub, unique)).member.member_id
    await stub.TransferOwnership(
        pb.TransferOwnershipRequest(
            request_id=f"ev-tr-{unique}",
            member_id=member_id,
            owner_guide_staff_id="G-EV2",
            reason="store closed",
        )
    )
    await order_events_producer.publish(
        order_completed(f"EV-{unique}", member_id, 2_000_00), f"EV-{unique}"
    )
    await stub.MergeMembers(
        pb.MergeMembersRequest(
            request_id=f"ev-merge-{unique}",
            surviving_member_id=member_id,
            merged_member_id=other,
            reason="duplicate",
        )
    )

    settings = test_stack.settings("member")
    consumer = AIOKafkaConsumer(
        settings.topic("member"),
        bootstrap_servers=test_stack.kafka_bootstrap,
        group_id=f"events-test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, bytes] = {}
    try:

        async def all_arrived() -> None:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = decode_envelope(record.value)
                    if envelope.aggregate_id == member_id:
                        seen[envelope.event_type] = record.value
            assert {
                "omni.member.v1.MemberRegisteredEvent",
                "omni.member.v1.MemberIdentityBoundEvent",
                "omni.member.v1.MemberOwnerChangedEvent",
                "omni.member.v1.MemberPointsChangedEvent",
                "omni.member.v1.MemberTierChangedEvent",
                "omni.member.v1.MembersMergedEvent",
            } <= set(seen)

        await eventually(all_arrived, timeout=30)
    finally:
        await consumer.stop()

    digits = phone.lstrip("+")
    for raw in seen.values():
        assert digits.encode() not in raw
        assert digits[2:].encode() not in raw
        assert "欧阳娜娜".encode() not in raw
        assert f"oSECRET{unique}".encode() not in raw
    assert any(r.getMessage() == "rpc" for r in caplog.records)  # the logs were captured
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert digits[2:] not in text and "欧阳娜娜" not in text and f"oSECRET{unique}" not in text
