"""Idempotent commands: a mutating RPC carries a request_id, and a retry with the same id
returns the first answer instead of doing the work again."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects.postgresql import insert

from libs.errors import FieldViolation, InvalidArgument
from libs.platform_tables import processed_requests
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory

ResponseT = TypeVar("ResponseT", bound=Message)

MAX_REQUEST_ID_LENGTH = 128


def fingerprint(request: Message, caller: str = "") -> bytes:
    """A digest of the request without its request_id, and of who sent it, to tell a retry
    from a reuse (another caller replaying someone's request_id is a reuse)."""
    copy = type(request)()
    copy.CopyFrom(request)
    if "request_id" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("request_id")
    digest = hashlib.sha256(copy.SerializeToString(deterministic=True))
    digest.update(b"\x00caller:" + caller.encode())
    return digest.digest()


def validate_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidArgument([FieldViolation("request_id", "is required for a mutating call")])
    if len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgument(
            [FieldViolation("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters")]
        )


async def run_idempotent(
    uow_factory: UnitOfWorkFactory,
    method: str,
    request: Message,
    response_type: type[ResponseT],
    handle: Callable[[UnitOfWork], Awaitable[ResponseT]],
    *,
    caller: str = "",
) -> ResponseT:
    """Run ``handle`` once per (method, request_id); a retry gets the stored response.

    In a service that scopes data by caller, pass the caller: the stored answer is only
    returned to the caller who made the request.

    The claim is an insert in the same transaction as the work: a concurrent duplicate waits
    on the row lock and then finds the committed answer; if the first attempt fails and rolls
    back, the claim goes with it and the retry does the work.
    """
    request_id: str = getattr(request, "request_id")  # noqa: B009 - every mutating request has one
    validate_request_id(request_id)
    digest = fingerprint(request, caller)
    async with uow_factory() as uow:
        claimed = await uow.session.execute(
            insert(processed_requests)
            .values(method=method, request_id=request_id, fingerprint=digest)
            .on_conflict_do_nothing()
            .returning(processed_requests.c.request_id)
        )
        if claimed.first() is None:
            row = (
                await uow.session.execute(
                    sa.select(
                        processed_requests.c.fingerprint, processed_requests.c.response
                    ).where(
                        processed_requests.c.method == method,
                        processed_requests.c.request_id == request_id,
                    )
                )
            ).one()
            if row.fingerprint != digest:
                raise InvalidArgument(
                    [FieldViolation("request_id", "was already used for a different request")]
                )
            stored = response_type()
            stored.ParseFromString(row.response)
            return stored
        response = await handle(uow)
        await uow.session.execute(
            processed_requests.update()
            .where(
                processed_requests.c.method == method,
                processed_requests.c.request_id == request_id,
            )
            .values(response=response.SerializeToString())
        )
        await uow.commit()
        return response


async def run_idempotent_on(
    conn: asyncpg.Connection,
    method: str,
    request: Message,
    response_type: type[ResponseT],
    handle: Callable[[], Awaitable[ResponseT]],
    *,
    caller: str = "",
) -> ResponseT:
    """``run_idempotent`` for hot paths on a plain asyncpg connection, inside the caller's
    transaction (libs/pg.py): the claim, the work ``handle`` does on the same connection and
    the stored response commit together."""
    request_id: str = getattr(request, "request_id")  # noqa: B009 - every mutating request has one
    validate_request_id(request_id)
    digest = fingerprint(request, caller)
    claimed = await conn.fetchval(
        "INSERT INTO processed_requests (method, request_id, fingerprint) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING request_id",
        method,
        request_id,
        digest,
    )
    if claimed is None:
        row = await conn.fetchrow(
            "SELECT fingerprint, response FROM processed_requests "
            "WHERE method = $1 AND request_id = $2",
            method,
            request_id,
        )
        assert row is not None
        if bytes(row["fingerprint"]) != digest:
            raise InvalidArgument(
                [FieldViolation("request_id", "was already used for a different request")]
            )
        stored = response_type()
        if row["response"] is not None:
            stored.ParseFromString(bytes(row["response"]))
        return stored
    response = await handle()
    await conn.execute(
        "UPDATE processed_requests SET response = $3 WHERE method = $1 AND request_id = $2",
        method,
        request_id,
        response.SerializeToString(),
    )
    return response
