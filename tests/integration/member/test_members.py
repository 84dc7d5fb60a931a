"""Members, sign-up sources, identities, ownership, privacy, bad input."""

from __future__ import annotations

import grpc
import pytest
from omni.member.v1 import events_pb2 as ev
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb

from libs.grpc_errors import field_violations
from tests.integration.member.conftest import PII, fresh_phone, register


async def test_self_sign_up_normalises_the_phone_and_masks_without_scope(stub, unique):
    national = fresh_phone()
    created = await register(stub, unique, phone=f"{national[:3]} {national[3:7]}-{national[7:]}")
    member = created.member
    assert member.phone == "+86" + national
    assert member.tier == ev.MEMBER_TIER_BASIC
    assert member.owner_guide_staff_id == ""

    masked = (await stub.GetMember(pb.GetMemberRequest(member_id=member.member_id))).member
    assert masked.pii_masked
    assert masked.phone == f"+86 {national[:3]}****{national[-4:]}"
    assert masked.name == "张**"
    full = (
        await stub.GetMember(pb.GetMemberRequest(member_id=member.member_id), metadata=PII)
    ).member
    assert (full.phone, full.name, full.pii_masked) == ("+86" + national, "张三丰", False)

    by_phone = await stub.LookupMember(pb.LookupMemberRequest(phone="0086" + national))
    assert by_phone.member.member_id == member.member_id


async def test_one_member_per_phone(stub, unique):
    created = await register(stub, unique)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(stub, unique, phone=created.member.phone)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_guide_assisted_sign_up_makes_the_guide_owner_and_transfer_keeps_history(
    stub, unique
):
    created = await register(
        stub,
        unique,
        source=ev.SIGN_UP_SOURCE_GUIDE_ASSISTED,
        guide_staff_id=f"G-{unique}",
        store_id="SH01",
    )
    member_id = created.member.member_id
    assert created.member.owner_guide_staff_id == f"G-{unique}"

    moved = await stub.TransferOwnership(
        pb.TransferOwnershipRequest(
            request_id=f"tr-{unique}",
            member_id=member_id,
            owner_guide_staff_id=f"G2-{unique}",
            owner_store_id="SH02",
            reason="guide left the company",
        )
    )
    assert moved.member.owner_guide_staff_id == f"G2-{unique}"
    assert moved.change.previous_owner_guide_staff_id == f"G-{unique}"

    history = await stub.ListOwnershipChanges(
        pb.ListOwnershipChangesRequest(member_id=member_id, page_size=1)
    )
    assert [c.owner_guide_staff_id for c in history.changes] == [f"G-{unique}"]
    rest = await stub.ListOwnershipChanges(
        pb.ListOwnershipChangesRequest(member_id=member_id, page_token=history.next_page_token)
    )
    assert [(c.owner_guide_staff_id, c.reason) for c in rest.changes] == [
        (f"G2-{unique}", "guide left the company")
    ]
    assert rest.next_page_token == ""


async def test_virtual_guide_sign_up_needs_the_guide(stub, unique):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(stub, unique, source=ev.SIGN_UP_SOURCE_VIRTUAL_GUIDE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "guide_staff_id" in [f for f, _ in field_violations(caught.value)]
    created = await register(
        stub, unique, source=ev.SIGN_UP_SOURCE_VIRTUAL_GUIDE, guide_staff_id="VG-01"
    )
    assert created.member.owner_guide_staff_id == "VG-01"


async def test_distributor_import_is_idempotent_and_reports_bad_rows(stub, unique):
    phones = [fresh_phone(), fresh_phone()]
    rows = [
        pb.ImportRow(phone=phones[0], name="Li", distributor_customer_id=f"C1-{unique}"),
        pb.ImportRow(phone="12345", name="Bad phone"),
        pb.ImportRow(phone=phones[1], name="Wang", distributor_customer_id=f"C2-{unique}"),
    ]
    first = await stub.ImportMembers(
        pb.ImportMembersRequest(request_id=f"imp-{unique}", distributor_id="DIST-9", rows=rows)
    )
    assert [r.outcome for r in first.results] == [
        pb.IMPORT_OUTCOME_CREATED,
        pb.IMPORT_OUTCOME_REJECTED,
        pb.IMPORT_OUTCOME_CREATED,
    ]
    assert [v.field for v in first.results[1].violations] == ["phone"]
    assert (first.created_count, first.rejected_count) == (2, 1)

    # The same file again under a new request id creates nothing twice.
    again = await stub.ImportMembers(
        pb.ImportMembersRequest(request_id=f"imp2-{unique}", distributor_id="DIST-9", rows=rows)
    )
    assert [r.outcome for r in again.results] == [
        pb.IMPORT_OUTCOME_EXISTING,
        pb.IMPORT_OUTCOME_REJECTED,
        pb.IMPORT_OUTCOME_EXISTING,
    ]
    assert [r.member_id for r in again.results] == [r.member_id for r in first.results]
    found = await stub.LookupMember(
        pb.LookupMemberRequest(
            identity=m.ChannelIdentity(
                kind=ev.IDENTITY_KIND_DISTRIBUTOR_CUSTOMER_ID,
                namespace="DIST-9",
                external_id=f"C2-{unique}",
            )
        ),
        metadata=PII,
    )
    assert found.member.member_id == first.results[2].member_id
    assert found.member.source == ev.SIGN_UP_SOURCE_DISTRIBUTOR_IMPORT
    assert found.member.distributor_id == "DIST-9"


async def test_an_import_of_a_merged_members_phone_binds_to_the_survivor(stub, unique):
    merged = (await register(stub, unique)).member
    survivor = (await register(stub, unique)).member
    await stub.MergeMembers(
        pb.MergeMembersRequest(
            request_id=f"merge-imp-{unique}",
            surviving_member_id=survivor.member_id,
            merged_member_id=merged.member_id,
            reason="same person",
        )
    )
    customer = m.ChannelIdentity(
        kind=ev.IDENTITY_KIND_DISTRIBUTOR_CUSTOMER_ID,
        namespace="DIST-M",
        external_id=f"CM-{unique}",
    )
    rows = [pb.ImportRow(phone=merged.phone, name="Li", distributor_customer_id=f"CM-{unique}")]
    imported = await stub.ImportMembers(
        pb.ImportMembersRequest(request_id=f"imp-m-{unique}", distributor_id="DIST-M", rows=rows)
    )
    assert [(r.outcome, r.member_id) for r in imported.results] == [
        (pb.IMPORT_OUTCOME_EXISTING, survivor.member_id)
    ]
    found = await stub.LookupMember(pb.LookupMemberRequest(identity=customer))
    assert found.member.member_id == survivor.member_id
    old = (await stub.GetMember(pb.GetMemberRequest(member_id=merged.member_id))).member
    assert list(old.identities) == []
    # Re-running the file (the identity now the survivor's) is still EXISTING, not a clash.
    again = await stub.ImportMembers(
        pb.ImportMembersRequest(request_id=f"imp-m2-{unique}", distributor_id="DIST-M", rows=rows)
    )
    assert [(r.outcome, r.member_id) for r in again.results] == [
        (pb.IMPORT_OUTCOME_EXISTING, survivor.member_id)
    ]


async def test_binding_an_identity_of_another_member_is_refused_unless_merged(stub, unique):
    openid = m.ChannelIdentity(
        kind=ev.IDENTITY_KIND_WECHAT_OPENID, namespace="wxapp1", external_id=f"oX-{unique}"
    )
    first = (await register(stub, unique, identity=openid)).member
    second = (await register(stub, unique)).member
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.BindIdentity(
            pb.BindIdentityRequest(
                request_id=f"bind-{unique}", member_id=second.member_id, identity=openid
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    still = await stub.LookupMember(pb.LookupMemberRequest(identity=openid))
    assert still.member.member_id == first.member_id

    merged = await stub.BindIdentity(
        pb.BindIdentityRequest(
            request_id=f"bind-merge-{unique}",
            member_id=second.member_id,
            identity=openid,
            merge_other_member=True,
            merge_reason="same person: verified by phone call",
        )
    )
    assert merged.merge.merged_member_id == first.member_id
    assert [i.namespace for i in merged.member.identities] == ["wxapp1"]
    old = (await stub.GetMember(pb.GetMemberRequest(member_id=first.member_id))).member
    assert old.state == m.MEMBER_STATE_MERGED
    assert old.merged_into_member_id == second.member_id


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "+86 123 4567 8901"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"source": 0}, "source"),
        ({"source": ev.SIGN_UP_SOURCE_GUIDE_ASSISTED, "store_id": "SH01"}, "guide_staff_id"),
        ({"guide_staff_id": "G-1"}, "guide_staff_id"),
        ({"request_id": ""}, "request_id"),
    ],
)
async def test_bad_sign_up_is_invalid_argument_naming_the_field_and_writes_nothing(
    stub, unique, overrides, field
):
    phone = fresh_phone()
    request = pb.RegisterMemberRequest(
        request_id=f"bad-{unique}", phone=phone, name="Zhao", source=ev.SIGN_UP_SOURCE_SELF
    )
    for key, value in overrides.items():
        setattr(request, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RegisterMember(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(caught.value)]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.LookupMember(pb.LookupMemberRequest(phone=phone))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_member_is_not_found(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetMember(pb.GetMemberRequest(member_id="M-NOPE"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.GetMember(pb.GetMemberRequest(member_id=""))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(empty.value)] == ["member_id"]
