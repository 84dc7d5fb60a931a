"""Member's events, kept as the local projection of who owns each member."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message
from omni.common.v1 import envelope_pb2
from omni.member.v1 import events_pb2 as member_events

from libs.consumer import Handler
from libs.unit_of_work import UnitOfWork
from services.distribution.adapters.proto import from_timestamp
from services.distribution.service_layer import members


async def on_member_registered(
    uow: UnitOfWork,
    event: member_events.MemberRegisteredEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    when = event.register_time if event.HasField("register_time") else envelope.occurred_at
    await members.record_member_owner(
        uow, event.member_id, event.owner_guide_staff_id, event.owner_store_id, from_timestamp(when)
    )


async def on_member_owner_changed(
    uow: UnitOfWork,
    event: member_events.MemberOwnerChangedEvent,
    envelope: envelope_pb2.EventEnvelope,
) -> None:
    when = event.change_time if event.HasField("change_time") else envelope.occurred_at
    await members.record_member_owner(
        uow, event.member_id, event.owner_guide_staff_id, event.owner_store_id, from_timestamp(when)
    )


SUBSCRIPTIONS: Mapping[type[Message], Handler] = {
    member_events.MemberRegisteredEvent: on_member_registered,
    member_events.MemberOwnerChangedEvent: on_member_owner_changed,
}
