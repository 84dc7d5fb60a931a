"""Order events arriving together are applied together, and exactly as one by one: in
order per member, each order and return once, an event the member service refuses parked
with its reason while the rest of its batch is applied; the ledger sums to the balance."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from omni.member.v1 import member_service_pb2 as pb

from libs.testing.services import eventually
from tests.integration.member.conftest import (
    ledger_sums,
    order_completed,
    register,
    return_received,
)


async def _dead_letters(bootstrap: str, topic: str, order_id: str) -> list[dict[str, bytes]]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    found: list[dict[str, bytes]] = []
    try:

        async def parked() -> None:
            batch = await reader.getmany(timeout_ms=300)
            for records in batch.values():
                found.extend(
                    dict(r.headers) for r in records if order_id.encode() in (r.value or b"")
                )
            assert found

        await eventually(parked, timeout=30)
    finally:
        await reader.stop()
    return found


async def test_a_batch_of_order_events_applies_each_once_in_order_and_parks_the_refused_one(
    stub, unique, order_events_producer, member_service
):
    a = (await register(stub, f"{unique}a")).member.member_id
    b = (await register(stub, f"{unique}b")).member.member_id
    nobody = f"M-NOBODY-{unique}"
    # Keyed by member, as one partition keeps them in order: the tier each order earns at
    # depends on the orders before it.
    await order_events_producer.publish_all(
        [
            (order_completed(f"A1-{unique}", a, 1_500_00), a),
            (order_completed(f"A2-{unique}", a, 600_00), a),  # reaches SILVER (2,000 yuan)
            (order_completed(f"X1-{unique}", nobody, 100_00), nobody),
            (order_completed(f"B1-{unique}", b, 100_00), b),
            (order_completed(f"A2-{unique}", a, 600_00), a),  # the same order, new event id
            (return_received(f"R1-{unique}", f"A1-{unique}", a, 500_00), a),
            (order_completed(f"A3-{unique}", a, 1_000_00), a),  # earns at SILVER
        ]
    )

    async def applied() -> pb.GetMemberResponse:
        found = await stub.GetMember(pb.GetMemberRequest(member_id=a))
        assert found.member.order_count == 3
        assert found.member.points_balance == 1500 + 600 - 500 + 1200
        return found

    member_a = (await eventually(applied, timeout=30)).member
    assert member_a.tier == 2  # SILVER
    assert member_a.lifetime_spend.amount_minor == 1_500_00 + 600_00 - 500_00 + 1_000_00
    member_b = (await stub.GetMember(pb.GetMemberRequest(member_id=b))).member
    assert (member_b.order_count, member_b.points_balance) == (1, 100)
    for member_id, member in ((a, member_a), (b, member_b)):
        assert (await ledger_sums(member_service, member_id))[0] == member.points_balance

    settings = member_service.settings
    parked = await _dead_letters(
        settings.require_kafka(), settings.dead_letter_topic(), f"X1-{unique}"
    )
    assert len(parked) == 1
    assert parked[0]["dlq.kind"] == b"rejected"
    assert f"member '{nobody}' does not exist".encode() in parked[0]["dlq.reason"]
