"""Member's events, kept as the local projection of who owns each member.

Bulk: each run of registrations (or owner changes) of a batch is one upsert."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf.message import Message
from omni.member.v1 import events_pb2 as member_events

from libs.consumer import Bulk, Delivery, Subscriber
from libs.pg import PgTransaction
from services.distribution.adapters.commission_store import PgCommissionWork
from services.distribution.adapters.proto import from_timestamp
from services.distribution.service_layer.members import OwnerChange, record_member_owners


def registered(delivery: Delivery[member_events.MemberRegisteredEvent]) -> OwnerChange:
    event, envelope = delivery.event, delivery.envelope
    when = event.register_time if event.HasField("register_time") else envelope.occurred_at
    return OwnerChange(
        event.member_id, event.owner_guide_staff_id, event.owner_store_id, from_timestamp(when)
    )


def owner_changed(delivery: Delivery[member_events.MemberOwnerChangedEvent]) -> OwnerChange:
    event, envelope = delivery.event, delivery.envelope
    when = event.change_time if event.HasField("change_time") else envelope.occurred_at
    return OwnerChange(
        event.member_id, event.owner_guide_staff_id, event.owner_store_id, from_timestamp(when)
    )


async def on_members_registered(
    tx: PgTransaction, deliveries: Sequence[Delivery[member_events.MemberRegisteredEvent]]
) -> None:
    await record_member_owners(PgCommissionWork(tx), [registered(d) for d in deliveries])


async def on_member_owners_changed(
    tx: PgTransaction, deliveries: Sequence[Delivery[member_events.MemberOwnerChangedEvent]]
) -> None:
    await record_member_owners(PgCommissionWork(tx), [owner_changed(d) for d in deliveries])


SUBSCRIPTIONS: Mapping[type[Message], Subscriber] = {
    member_events.MemberRegisteredEvent: Bulk(on_members_registered),
    member_events.MemberOwnerChangedEvent: Bulk(on_member_owners_changed),
}
