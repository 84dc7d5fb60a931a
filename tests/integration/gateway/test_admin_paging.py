"""The gateway's list RPCs page with opaque tokens (libs.pagination) and refuse foreign ones."""

from __future__ import annotations

import grpc
import pytest
from omni.gateway.v1 import gateway_service_pb2 as gw_svc

from libs.grpc_errors import field_violations
from tests.integration.gateway.conftest import Platform


async def test_channels_page_through_every_one_once_and_a_forged_token_is_refused(
    platform: Platform, unique: str
) -> None:
    made = {f"PG{unique}-{i}" for i in range(5)}
    for channel_id in sorted(made):
        await platform.channel(channel_id, "web_mall")
    seen: list[str] = []
    token = ""
    while True:
        page = await platform.gateway.ListChannels(
            gw_svc.ListChannelsRequest(page_size=2, page_token=token)
        )
        assert len(page.channels) <= 2
        seen += [c.channel_id for c in page.channels]
        token = page.next_page_token
        if not token:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await platform.gateway.ListChannels(gw_svc.ListChannelsRequest(page_token="PG-raw-id"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in [f for f, _ in field_violations(caught.value)]
