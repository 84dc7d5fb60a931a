"""omni.member.v1.MemberService: translate, call a use case, translate back. Personal data
is masked unless the call's metadata x-omni-scopes includes member.pii.read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from omni.member.v1 import member_pb2
from omni.member.v1 import member_service_pb2 as pb
from omni.member.v1 import member_service_pb2_grpc as pb_grpc

from libs import pagination as paging
from libs.errors import InvalidArgument, Validator
from libs.idempotency import run_idempotent, validate_request_id
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.member.adapters.proto import (
    identity_from_proto,
    member_to_proto,
    merge_to_proto,
    ownership_change_to_proto,
    points_entry_to_proto,
    purchase_to_proto,
    rule_from_proto,
    stored_value_entry_to_proto,
    timestamp,
)
from services.member.config import MemberConfig
from services.member.domain.members import (
    ContactChannel,
    Identity,
    Member,
    validate_sign_up,
)
from services.member.domain.phones import normalise_phone
from services.member.domain.privacy import mask_name, mask_phone, may_read_pii, scopes_from_metadata
from services.member.service_layer import (
    member_codes,
    members,
    merge,
    points,
    purchases,
    segments,
    stored_value,
)

Context = grpc.aio.ServicerContext[Any, Any]


def _reveal(context: Context) -> bool:
    return may_read_pii(scopes_from_metadata(context.invocation_metadata() or ()))


def _require_id(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument.field(field, "is required")
    return value.strip()


class MemberServicer(pb_grpc.MemberServiceServicer):
    def __init__(self, uow_factory: UnitOfWorkFactory, config: MemberConfig) -> None:
        self.uow = uow_factory
        self.config = config

    def _member(self, member: Member, context: Context) -> member_pb2.Member:
        return member_to_proto(member, reveal_pii=_reveal(context))

    # -- members and identities -------------------------------------------------------

    async def RegisterMember(
        self, request: pb.RegisterMemberRequest, context: Context
    ) -> pb.RegisterMemberResponse:
        v = Validator()
        identities: tuple[Identity, ...] = ()
        if request.HasField("identity"):
            identity = identity_from_proto(v, request.identity, "identity")
            identities = (identity,) if identity else ()
        new = validate_sign_up(
            v,
            phone=request.phone,
            name=request.name,
            source=int(request.source),
            guide_staff_id=request.guide_staff_id.strip(),
            store_id=request.store_id.strip(),
            consents=[int(c) for c in request.consents],
            identities=identities,
        )
        v.raise_if_any()
        assert new is not None
        reveal = _reveal(context)

        async def handle(uow: UnitOfWork) -> pb.RegisterMemberResponse:
            member = await members.register_member(uow, new)
            return pb.RegisterMemberResponse(member=member_to_proto(member, reveal_pii=True))

        response = await run_idempotent(
            self.uow, "RegisterMember", request, pb.RegisterMemberResponse, handle
        )
        # The stored answer is the full one; each caller sees what its own scope allows.
        return _masked_response(response, reveal)

    async def GetMember(
        self, request: pb.GetMemberRequest, context: Context
    ) -> pb.GetMemberResponse:
        member_id = _require_id(request.member_id, "member_id")
        async with self.uow() as uow:
            member = await members.get_member(uow, member_id)
        return pb.GetMemberResponse(member=self._member(member, context))

    async def LookupMember(
        self, request: pb.LookupMemberRequest, context: Context
    ) -> pb.LookupMemberResponse:
        which = request.WhichOneof("key")
        async with self.uow() as uow:
            if which == "phone":
                member = await members.lookup_by_phone(uow, normalise_phone(request.phone))
            elif which == "identity":
                v = Validator()
                identity = identity_from_proto(v, request.identity, "identity")
                v.raise_if_any()
                assert identity is not None
                member = await members.lookup_by_identity(uow, identity)
            else:
                raise InvalidArgument.field("key", "set phone or identity")
        return pb.LookupMemberResponse(member=self._member(member, context))

    async def ImportMembers(
        self, request: pb.ImportMembersRequest, context: Context
    ) -> pb.ImportMembersResponse:
        rows = [
            members.ImportRow(
                phone=r.phone,
                name=r.name,
                distributor_customer_id=r.distributor_customer_id.strip(),
                guide_staff_id=r.guide_staff_id.strip(),
                store_id=r.store_id.strip(),
                consents=[int(c) for c in r.consents],
            )
            for r in request.rows
        ]
        distributor_id = request.distributor_id.strip()
        members.validate_import(distributor_id, rows)
        outcomes = {
            "created": pb.IMPORT_OUTCOME_CREATED,
            "existing": pb.IMPORT_OUTCOME_EXISTING,
            "rejected": pb.IMPORT_OUTCOME_REJECTED,
        }

        async def handle(uow: UnitOfWork) -> pb.ImportMembersResponse:
            results = await members.import_members(uow, distributor_id, rows)
            response = pb.ImportMembersResponse(
                results=[
                    pb.ImportRowResult(
                        row_index=r.row_index,
                        outcome=outcomes[r.outcome],
                        member_id=r.member_id,
                        violations=[
                            pb.ImportViolation(field=f, description=d) for f, d in r.violations
                        ],
                    )
                    for r in results
                ]
            )
            response.created_count = sum(r.outcome == "created" for r in results)
            response.existing_count = sum(r.outcome == "existing" for r in results)
            response.rejected_count = sum(r.outcome == "rejected" for r in results)
            return response

        return await run_idempotent(
            self.uow, "ImportMembers", request, pb.ImportMembersResponse, handle
        )

    async def BindIdentity(
        self, request: pb.BindIdentityRequest, context: Context
    ) -> pb.BindIdentityResponse:
        v = Validator()
        v.check(bool(request.member_id.strip()), "member_id", "is required")
        identity = identity_from_proto(v, request.identity, "identity")
        if request.merge_other_member:
            v.check(bool(request.merge_reason.strip()), "merge_reason", "is required to merge")
        v.raise_if_any()
        assert identity is not None
        member_id = request.member_id.strip()

        async def handle(uow: UnitOfWork) -> pb.BindIdentityResponse:
            response = pb.BindIdentityResponse()
            if request.merge_other_member:
                owner = await members.identity_owner(uow, identity)
                if owner is not None and owner != member_id:
                    _, trail = await merge.merge_members(
                        uow, member_id, owner, request.merge_reason
                    )
                    response.merge.CopyFrom(merge_to_proto(trail))
            member = await members.bind_identity(uow, member_id, identity)
            response.member.CopyFrom(member_to_proto(member, reveal_pii=True))
            return response

        response = await run_idempotent(
            self.uow, "BindIdentity", request, pb.BindIdentityResponse, handle
        )
        return _masked_response(response, _reveal(context))

    async def MergeMembers(
        self, request: pb.MergeMembersRequest, context: Context
    ) -> pb.MergeMembersResponse:
        merge.validate_merge(request.surviving_member_id, request.merged_member_id, request.reason)

        async def handle(uow: UnitOfWork) -> pb.MergeMembersResponse:
            member, trail = await merge.merge_members(
                uow, request.surviving_member_id, request.merged_member_id, request.reason
            )
            return pb.MergeMembersResponse(
                member=member_to_proto(member, reveal_pii=True), merge=merge_to_proto(trail)
            )

        response = await run_idempotent(
            self.uow, "MergeMembers", request, pb.MergeMembersResponse, handle
        )
        return _masked_response(response, _reveal(context))

    # -- ownership and consent ------------------------------------------------------------

    async def TransferOwnership(
        self, request: pb.TransferOwnershipRequest, context: Context
    ) -> pb.TransferOwnershipResponse:
        member_id = _require_id(request.member_id, "member_id")

        async def handle(uow: UnitOfWork) -> pb.TransferOwnershipResponse:
            member, change = await members.transfer_ownership(
                uow,
                member_id,
                request.owner_guide_staff_id.strip(),
                request.owner_store_id.strip(),
                request.reason,
            )
            return pb.TransferOwnershipResponse(
                member=member_to_proto(member, reveal_pii=True),
                change=ownership_change_to_proto(change),
            )

        response = await run_idempotent(
            self.uow, "TransferOwnership", request, pb.TransferOwnershipResponse, handle
        )
        return _masked_response(response, _reveal(context))

    async def ListOwnershipChanges(
        self, request: pb.ListOwnershipChangesRequest, context: Context
    ) -> pb.ListOwnershipChangesResponse:
        member_id = _require_id(request.member_id, "member_id")
        limit = paging.page_size(request.page_size)
        after = paging.decode_token(request.page_token, 1, (int,))
        async with self.uow() as uow:
            rows = await members.list_ownership_changes(
                uow, member_id, limit, int(after[0]) if after else None
            )
        page, more = rows[:limit], len(rows) > limit
        return pb.ListOwnershipChangesResponse(
            changes=[ownership_change_to_proto(r) for r in page],
            next_page_token=paging.encode_token([int(page[-1].id)]) if more else "",
        )

    async def SetContactConsent(
        self, request: pb.SetContactConsentRequest, context: Context
    ) -> pb.SetContactConsentResponse:
        member_id = _require_id(request.member_id, "member_id")
        if int(request.channel) not in ContactChannel._value2member_map_:
            raise InvalidArgument.field("channel", "must be a known contact channel")

        async def handle(uow: UnitOfWork) -> pb.SetContactConsentResponse:
            member = await members.set_contact_consent(
                uow, member_id, int(request.channel), request.consented
            )
            return pb.SetContactConsentResponse(member=member_to_proto(member, reveal_pii=True))

        response = await run_idempotent(
            self.uow, "SetContactConsent", request, pb.SetContactConsentResponse, handle
        )
        return _masked_response(response, _reveal(context))

    # -- points -----------------------------------------------------------------------

    async def RedeemPoints(
        self, request: pb.RedeemPointsRequest, context: Context
    ) -> pb.RedeemPointsResponse:
        member_id = _require_id(request.member_id, "member_id")
        if request.points <= 0:
            raise InvalidArgument.field("points", "must be positive")

        async def handle(uow: UnitOfWork) -> pb.RedeemPointsResponse:
            entry = await points.redeem_points(uow, member_id, request.points, request.note)
            return pb.RedeemPointsResponse(entry=points_entry_to_proto(entry))

        return await run_idempotent(
            self.uow, "RedeemPoints", request, pb.RedeemPointsResponse, handle
        )

    async def ListPointsEntries(
        self, request: pb.ListPointsEntriesRequest, context: Context
    ) -> pb.ListPointsEntriesResponse:
        member_id = _require_id(request.member_id, "member_id")
        limit = paging.page_size(request.page_size)
        after = paging.decode_token(request.page_token, 1, (int,))
        async with self.uow() as uow:
            rows = await points.list_entries(
                uow, member_id, limit, int(after[0]) if after else None
            )
        page, more = rows[:limit], len(rows) > limit
        return pb.ListPointsEntriesResponse(
            entries=[points_entry_to_proto(r) for r in page],
            next_page_token=paging.encode_token([int(page[-1].id)]) if more else "",
        )

    # -- stored value -------------------------------------------------------------------

    async def RechargeStoredValue(
        self, request: pb.RechargeStoredValueRequest, context: Context
    ) -> pb.RechargeStoredValueResponse:
        member_id = _require_id(request.member_id, "member_id")

        async def handle(uow: UnitOfWork) -> pb.RechargeStoredValueResponse:
            entry = await stored_value.recharge(
                uow,
                member_id,
                request.amount.currency_code,
                request.amount.amount_minor,
                request.reference,
            )
            return pb.RechargeStoredValueResponse(entry=stored_value_entry_to_proto(entry))

        return await run_idempotent(
            self.uow, "RechargeStoredValue", request, pb.RechargeStoredValueResponse, handle
        )

    async def PayWithStoredValue(
        self, request: pb.PayWithStoredValueRequest, context: Context
    ) -> pb.PayWithStoredValueResponse:
        member_id = _require_id(request.member_id, "member_id")

        async def handle(uow: UnitOfWork) -> pb.PayWithStoredValueResponse:
            entry = await stored_value.pay(
                uow,
                member_id,
                request.amount.currency_code,
                request.amount.amount_minor,
                request.reference,
            )
            return pb.PayWithStoredValueResponse(entry=stored_value_entry_to_proto(entry))

        return await run_idempotent(
            self.uow, "PayWithStoredValue", request, pb.PayWithStoredValueResponse, handle
        )

    async def RefundStoredValue(
        self, request: pb.RefundStoredValueRequest, context: Context
    ) -> pb.RefundStoredValueResponse:
        member_id = _require_id(request.member_id, "member_id")

        async def handle(uow: UnitOfWork) -> pb.RefundStoredValueResponse:
            entry = await stored_value.refund(
                uow,
                member_id,
                request.payment_entry_id.strip(),
                request.amount.currency_code,
                request.amount.amount_minor,
                request.reference,
            )
            return pb.RefundStoredValueResponse(entry=stored_value_entry_to_proto(entry))

        return await run_idempotent(
            self.uow, "RefundStoredValue", request, pb.RefundStoredValueResponse, handle
        )

    async def ListStoredValueEntries(
        self, request: pb.ListStoredValueEntriesRequest, context: Context
    ) -> pb.ListStoredValueEntriesResponse:
        member_id = _require_id(request.member_id, "member_id")
        limit = paging.page_size(request.page_size)
        after = paging.decode_token(request.page_token, 1, (int,))
        async with self.uow() as uow:
            rows = await stored_value.list_entries(
                uow, member_id, limit, int(after[0]) if after else None
            )
        page, more = rows[:limit], len(rows) > limit
        return pb.ListStoredValueEntriesResponse(
            entries=[stored_value_entry_to_proto(r) for r in page],
            next_page_token=paging.encode_token([int(page[-1].seq)]) if more else "",
        )

    # -- member codes -------------------------------------------------------------------

    async def IssueMemberCode(
        self, request: pb.IssueMemberCodeRequest, context: Context
    ) -> pb.IssueMemberCodeResponse:
        member_id = _require_id(request.member_id, "member_id")
        async with self.uow() as uow:
            code, expires_at = await member_codes.issue_code(
                uow, self.config.code_key, member_id, datetime.now(UTC), self.config.code_ttl
            )
        return pb.IssueMemberCodeResponse(code=code, expire_time=timestamp(expires_at))

    async def ResolveMemberCode(
        self, request: pb.ResolveMemberCodeRequest, context: Context
    ) -> pb.ResolveMemberCodeResponse:
        """Not replayable, not even with the same request_id: a member code is single use,
        and a stored answer would hand the member to whoever re-sends the request (the
        request id is no secret). A POS that lost the answer asks for a fresh code."""
        validate_request_id(request.request_id)
        code = _require_id(request.code, "code")
        async with self.uow() as uow:
            member = await member_codes.resolve_code(
                uow, self.config.code_key, code, datetime.now(UTC)
            )
            await uow.commit()
        return pb.ResolveMemberCodeResponse(member=self._member(member, context))

    # -- history and segments -----------------------------------------------------------

    async def ListPurchaseRecords(
        self, request: pb.ListPurchaseRecordsRequest, context: Context
    ) -> pb.ListPurchaseRecordsResponse:
        member_id = _require_id(request.member_id, "member_id")
        limit = paging.page_size(request.page_size)
        after = _purchase_position(request.page_token)
        async with self.uow() as uow:
            rows = await purchases.list_records(uow, member_id, limit, after)
        page, more = rows[:limit], len(rows) > limit
        next_token = ""
        if more:
            last = page[-1]
            next_token = paging.encode_token([last.occurred_at.isoformat(), int(last.id)])
        return pb.ListPurchaseRecordsResponse(
            records=[purchase_to_proto(r) for r in page], next_page_token=next_token
        )

    async def EvaluateSegment(
        self, request: pb.EvaluateSegmentRequest, context: Context
    ) -> pb.EvaluateSegmentResponse:
        rule = rule_from_proto(request.rule)
        limit = paging.page_size(request.page_size)
        after = paging.decode_token(request.page_token, 1, (str,))
        async with self.uow() as uow:
            ids, total = await segments.evaluate(
                uow,
                rule,
                datetime.now(UTC),
                limit,
                str(after[0]) if after else None,
                with_total=after is None,
            )
        page, more = ids[:limit], len(ids) > limit
        return pb.EvaluateSegmentResponse(
            member_ids=page,
            next_page_token=paging.encode_token([page[-1]]) if more else "",
            total_size=total,
        )

    async def ExportSegmentContacts(
        self, request: pb.ExportSegmentContactsRequest, context: Context
    ) -> pb.ExportSegmentContactsResponse:
        v = Validator()
        v.check(
            int(request.channel) in ContactChannel._value2member_map_,
            "channel",
            "must be a known contact channel",
        )
        v.raise_if_any()
        rule = rule_from_proto(request.rule)
        limit = paging.page_size(request.page_size)
        after = paging.decode_token(request.page_token, 1, (str,))
        reveal = _reveal(context)
        async with self.uow() as uow:
            rows = await segments.export_contacts(
                uow,
                rule,
                ContactChannel(int(request.channel)),
                datetime.now(UTC),
                limit,
                str(after[0]) if after else None,
            )
        page, more = rows[:limit], len(rows) > limit
        return pb.ExportSegmentContactsResponse(
            contacts=[
                member_pb2.SegmentContact(
                    member_id=member_id,
                    phone=phone if reveal else mask_phone(phone),
                    name=name if reveal else mask_name(name),
                    pii_masked=not reveal,
                )
                for member_id, phone, name in page
            ],
            next_page_token=paging.encode_token([page[-1][0]]) if more else "",
        )


def _purchase_position(token: str) -> tuple[datetime, int] | None:
    """(occurred_at, id) of the last record of the previous page: an aware UTC moment the
    database can hold, or INVALID_ARGUMENT (never a failure in the driver)."""
    position = paging.decode_token(token, 2, (str, int))
    if position is None:
        return None
    try:
        moment = datetime.fromisoformat(str(position[0]))
        if moment.tzinfo is None:
            raise ValueError("a naive moment")
        return moment.astimezone(UTC), int(position[1])
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument.field("page_token", "is not a token this service issued") from exc


def _masked_response(response: Any, reveal: bool) -> Any:
    """Idempotent responses are stored unmasked (a retry by a caller with more scope must not
    get a masked copy); mask the member in it for this caller when needed."""
    if reveal or not response.HasField("member"):
        return response
    masked = type(response)()
    masked.CopyFrom(response)
    member = masked.member
    member.phone = mask_phone(member.phone)
    member.name = mask_name(member.name)
    member.pii_masked = True
    for identity in member.identities:
        identity.external_id = mask_name(identity.external_id)
    return masked
