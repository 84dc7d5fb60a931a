"""Bad input names its field (NUL characters, unknown ids, foreign page tokens) and writes
nothing; error paths never put personal data in the logs."""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest
from omni.member.v1 import events_pb2 as ev
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb

from libs.grpc_errors import field_violations, not_found_field
from libs.pagination import encode_token
from tests.integration.member.conftest import PII, cny, fresh_phone, ledger_sums, register


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _text(record: logging.LogRecord) -> str:
    """Everything a log line could carry: message, extra fields, arguments, traceback."""
    formatted = logging.Formatter("%(message)s").format(record)
    return f"{formatted} {record.__dict__!r}"


async def test_nul_in_names_reasons_and_ids_is_named_and_nothing_is_logged(
    stub, unique, member_service, caplog
):
    caplog.set_level(logging.DEBUG)
    secret_name = f"秘密{uuid.uuid4().hex[:6]}"
    phone = fresh_phone()
    member = (await register(stub, unique)).member
    wechat = m.ChannelIdentity(
        kind=ev.IDENTITY_KIND_WECHAT_OPENID, namespace="wxapp", external_id=f"oNUL\x00{unique}"
    )
    cases = [
        (
            stub.RegisterMember(
                pb.RegisterMemberRequest(
                    request_id=f"nul-reg-{unique}",
                    phone=phone,
                    name=f"{secret_name}\x00",
                    source=ev.SIGN_UP_SOURCE_SELF,
                )
            ),
            "name",
        ),
        (
            stub.TransferOwnership(
                pb.TransferOwnershipRequest(
                    request_id=f"nul-tr-{unique}",
                    member_id=member.member_id,
                    owner_guide_staff_id="G-NUL",
                    reason="guide left\x00",
                )
            ),
            "reason",
        ),
        (
            stub.BindIdentity(
                pb.BindIdentityRequest(
                    request_id=f"nul-bind-{unique}", member_id=member.member_id, identity=wechat
                )
            ),
            "identity.external_id",
        ),
        (
            stub.ImportMembers(
                pb.ImportMembersRequest(
                    request_id=f"nul-imp-{unique}",
                    distributor_id="DIST-NUL",
                    rows=[
                        pb.ImportRow(phone=fresh_phone(), name="ok"),
                        pb.ImportRow(phone=phone, name=secret_name, distributor_customer_id="\x00"),
                    ],
                )
            ),
            "rows[1].distributor_customer_id",
        ),
        (
            stub.MergeMembers(
                pb.MergeMembersRequest(
                    request_id=f"nul-merge-{unique}",
                    surviving_member_id=member.member_id,
                    merged_member_id=(await register(stub, unique)).member.member_id,
                    reason="\x00",
                )
            ),
            "reason",
        ),
    ]
    for call, field in cases:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in [f for f, _ in field_violations(error)], field
    # Nothing was written: no member with the phone, no owner change, no identity.
    missing = await rpc_error(stub.LookupMember(pb.LookupMemberRequest(phone=phone)))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    after = (
        await stub.GetMember(pb.GetMemberRequest(member_id=member.member_id), metadata=PII)
    ).member
    assert (after.owner_guide_staff_id, list(after.identities), after.state) == (
        "",
        [],
        m.MEMBER_STATE_ACTIVE,
    )
    assert await ledger_sums(member_service, member.member_id) == (0, 0)
    assert any(r.getMessage() == "rpc" for r in caplog.records)
    for record in caplog.records:
        text = _text(record)
        assert secret_name not in text and phone[3:] not in text


async def test_error_paths_never_log_phones_or_names(stub, unique, caplog):
    caplog.set_level(logging.DEBUG)
    name = f"欧阳{uuid.uuid4().hex[:6]}"
    created = (await register(stub, unique, name=name)).member
    national = created.phone.removeprefix("+86")
    unknown_phone = fresh_phone()
    calls = [
        # A second sign-up with the phone: ALREADY_EXISTS.
        stub.RegisterMember(
            pb.RegisterMemberRequest(
                request_id=f"dup-{unique}", phone=national, name=name, source=ev.SIGN_UP_SOURCE_SELF
            )
        ),
        # A malformed phone that still carries the digits, and an unknown one.
        stub.RegisterMember(
            pb.RegisterMemberRequest(
                request_id=f"badphone-{unique}",
                phone=f"{national}9",
                name=name,
                source=ev.SIGN_UP_SOURCE_SELF,
            )
        ),
        stub.LookupMember(pb.LookupMemberRequest(phone=unknown_phone)),
        stub.LookupMember(pb.LookupMemberRequest(phone=f"+86{national}x")),
        # A refund of a payment that does not exist, with a name as its reference.
        stub.RefundStoredValue(
            pb.RefundStoredValueRequest(
                request_id=f"rf-{unique}",
                member_id=created.member_id,
                payment_entry_id=str(uuid.uuid4()),
                amount=cny(1_00),
                reference=name,
            )
        ),
    ]
    codes = [(await rpc_error(call)).code() for call in calls]
    assert codes == [
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
    ]
    imported = await stub.ImportMembers(
        pb.ImportMembersRequest(
            request_id=f"imp-{unique}",
            distributor_id="DIST-LOG",
            rows=[pb.ImportRow(phone=f"{national}99", name=name)],
        )
    )
    assert imported.rejected_count == 1
    assert any(r.getMessage() == "rpc" for r in caplog.records)
    for record in caplog.records:
        text = _text(record)
        for secret in (national, unknown_phone, name):
            assert secret not in text, (secret, record.getMessage())


async def test_not_found_names_the_field(stub, unique):
    member_id = (await register(stub, unique)).member.member_id
    nobody = f"M-NOBODY-{unique}"
    cases = [
        (stub.GetMember(pb.GetMemberRequest(member_id=nobody)), "member_id"),
        (stub.IssueMemberCode(pb.IssueMemberCodeRequest(member_id=nobody)), "member_id"),
        (stub.ListPointsEntries(pb.ListPointsEntriesRequest(member_id=nobody)), "member_id"),
        (
            stub.RechargeStoredValue(
                pb.RechargeStoredValueRequest(
                    request_id=f"nf-rc-{unique}", member_id=nobody, amount=cny(1_00)
                )
            ),
            "member_id",
        ),
        (
            stub.MergeMembers(
                pb.MergeMembersRequest(
                    request_id=f"nf-m1-{unique}",
                    surviving_member_id=nobody,
                    merged_member_id=member_id,
                    reason="dup",
                )
            ),
            "surviving_member_id",
        ),
        (
            stub.MergeMembers(
                pb.MergeMembersRequest(
                    request_id=f"nf-m2-{unique}",
                    surviving_member_id=member_id,
                    merged_member_id=nobody,
                    reason="dup",
                )
            ),
            "merged_member_id",
        ),
        (
            stub.RefundStoredValue(
                pb.RefundStoredValueRequest(
                    request_id=f"nf-rf-{unique}",
                    member_id=member_id,
                    payment_entry_id=str(uuid.uuid4()),
                    amount=cny(1_00),
                )
            ),
            "payment_entry_id",
        ),
        (stub.LookupMember(pb.LookupMemberRequest(phone=fresh_phone())), "phone"),
        (
            stub.LookupMember(
                pb.LookupMemberRequest(
                    identity=m.ChannelIdentity(
                        kind=ev.IDENTITY_KIND_MALL_ACCOUNT, namespace="mall", external_id=nobody
                    )
                )
            ),
            "identity",
        ),
    ]
    for call, field in cases:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, field
        assert not_found_field(error) == field


# Not base64 JSON ("²" passes str.isdigit() but not int()), too long, the wrong arity.
FOREIGN_TOKENS = ["²", "٣", "9" * 30, encode_token(["x", "y", "z"])]
FOREIGN_MOMENTS = [
    encode_token([5]),
    encode_token(["2026-01-01T00:00:00", 5]),  # naive
    encode_token(["0001-01-01T00:00:00+14:00", 5]),  # before year 1 in UTC
    encode_token(["9999-12-31T23:59:59-14:00", 5]),  # after year 9999 in UTC
    encode_token(["not a time", 5]),
    encode_token(["2026-01-01T00:00:00+00:00", "5"]),
    encode_token(["2026-01-01T00:00:00+00:00", 2**63]),
]


async def test_page_tokens_this_service_never_issued_are_invalid_argument(stub, unique):
    member_id = (await register(stub, unique)).member.member_id
    rule = m.SegmentRule(all_of=[m.SegmentCondition(tier=ev.MEMBER_TIER_BASIC)])

    def by_sequence(token: str) -> list:
        return [
            stub.ListOwnershipChanges(
                pb.ListOwnershipChangesRequest(member_id=member_id, page_token=token)
            ),
            stub.ListPointsEntries(
                pb.ListPointsEntriesRequest(member_id=member_id, page_token=token)
            ),
            stub.ListStoredValueEntries(
                pb.ListStoredValueEntriesRequest(member_id=member_id, page_token=token)
            ),
        ]

    def by_member_id(token: str) -> list:
        return [
            stub.EvaluateSegment(pb.EvaluateSegmentRequest(rule=rule, page_token=token)),
            stub.ExportSegmentContacts(
                pb.ExportSegmentContactsRequest(
                    rule=rule, channel=m.CONTACT_CHANNEL_SMS, page_token=token
                )
            ),
        ]

    def by_moment(token: str) -> list:
        return [
            stub.ListPurchaseRecords(
                pb.ListPurchaseRecordsRequest(member_id=member_id, page_token=token)
            )
        ]

    calls = [
        call
        for token in FOREIGN_TOKENS
        for call in (*by_sequence(token), *by_member_id(token), *by_moment(token))
    ]
    calls += [*by_sequence(encode_token(["M1"])), *by_sequence(encode_token([2**63]))]
    calls += by_member_id(encode_token([1]))
    calls += [call for token in FOREIGN_MOMENTS for call in by_moment(token)]
    for call in calls:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(error)] == ["page_token"]
