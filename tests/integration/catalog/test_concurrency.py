"""Races that only real PostgreSQL can referee: a barcode claimed twice at once, two moves
that together would make a cycle."""

from __future__ import annotations

import asyncio

import grpc
from omni.catalog.v1 import catalog_service_pb2 as cat

from tests.integration.catalog.helpers import barcode_for, make_category, make_sku, rid


async def test_concurrent_creates_with_one_barcode_give_one_sku(catalog, unique):
    barcode = barcode_for(unique, 7)
    results = await asyncio.gather(
        *(
            make_sku(catalog.stub, f"RB{unique}-{i}", f"RB{unique}", barcode=barcode)
            for i in range(4)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert len(refused) == 3
    assert {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_two_crossing_moves_cannot_make_a_cycle(catalog, unique):
    a, b = f"XA{unique}", f"XB{unique}"
    await make_category(catalog.stub, a)
    await make_category(catalog.stub, b)

    def move(code: str, parent: str):
        return catalog.stub.MoveCategory(
            cat.MoveCategoryRequest(request_id=rid(), category_code=code, new_parent_code=parent),
            timeout=10,
        )

    results = await asyncio.gather(move(a, b), move(b, a), return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 1
    assert refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
