"""The e-member code: resolved once; replayed, expired and forged codes refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from omni.member.v1 import member_service_pb2 as pb

from services.member.domain import member_codes
from tests.integration.member.conftest import CODE_KEY, PII, register


async def _resolve(stub, request_id: str, code: str, metadata=()):
    return await stub.ResolveMemberCode(
        pb.ResolveMemberCodeRequest(request_id=request_id, code=code), metadata=metadata
    )


async def test_a_code_resolves_once_and_a_replay_is_refused(stub, unique):
    member_id = (await register(stub, unique)).member.member_id
    issued = await stub.IssueMemberCode(pb.IssueMemberCodeRequest(member_id=member_id))
    assert issued.expire_time.ToDatetime(UTC) <= datetime.now(UTC) + timedelta(seconds=61)

    resolved = await _resolve(stub, f"pos-{unique}", issued.code, PII)
    assert resolved.member.member_id == member_id
    assert not resolved.member.pii_masked
    masked = await _resolve(
        stub,
        f"pos-m-{unique}",
        (await stub.IssueMemberCode(pb.IssueMemberCodeRequest(member_id=member_id))).code,
    )
    assert masked.member.member_id == member_id and masked.member.pii_masked
    # The code is spent: presenting it again is refused, whoever sends it and whatever the
    # request id — the same one included (a request id is no secret: it must not replay
    # the member to another caller).
    for request_id, metadata in (
        (f"pos-{unique}", PII),
        (f"pos-{unique}", ()),
        (f"pos-{unique}", (("x-omni-caller", "another-till"),)),
        (f"pos2-{unique}", PII),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _resolve(stub, request_id, issued.code, metadata)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The request id is still required.
    fresh = (await stub.IssueMemberCode(pb.IssueMemberCodeRequest(member_id=member_id))).code
    with pytest.raises(grpc.aio.AioRpcError) as no_id:
        await _resolve(stub, "", fresh)
    assert no_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await _resolve(stub, f"pos3-{unique}", fresh)).member.member_id == member_id


async def test_expired_and_forged_codes_are_refused(stub, unique):
    member_id = (await register(stub, unique)).member.member_id
    stale = member_codes.encode(
        CODE_KEY.encode(),
        member_codes.MemberCode(member_id, "c0ffee", datetime.now(UTC) - timedelta(minutes=2)),
    )
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await _resolve(stub, f"exp-{unique}", stale)
    assert expired.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    forged = member_codes.encode(
        b"the-local-default-key-or-a-guess",
        member_codes.MemberCode(member_id, "bad", datetime.now(UTC) + timedelta(seconds=30)),
    )
    issued = (await stub.IssueMemberCode(pb.IssueMemberCodeRequest(member_id=member_id))).code
    version, _payload, signature = issued.split(".")
    other = (await register(stub, unique)).member.member_id
    swapped = member_codes.encode(
        b"x", member_codes.MemberCode(other, "x", datetime.now(UTC) + timedelta(seconds=30))
    ).split(".")[1]
    for bad in (forged, f"{version}.{swapped}.{signature}", "hello", ""):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _resolve(stub, f"forged-{unique}-{len(bad)}", bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The genuine code is still good: refusals spent nothing.
    assert (await _resolve(stub, f"ok-{unique}", issued)).member.member_id == member_id
