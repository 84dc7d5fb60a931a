"""One distribution service and the order/member producers for this package's tests."""

from __future__ import annotations

import grpc
import pytest

from libs.testing.services import running_service
from tests.integration.distribution.support import ADMIN, Api, producers


@pytest.fixture(scope="package")
async def distribution(test_stack):
    async with running_service(test_stack.settings("distribution")) as process:
        yield process


@pytest.fixture(scope="package")
async def api(distribution):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{distribution.port}") as channel:
        yield Api(channel, ADMIN)


@pytest.fixture(scope="package")
async def events(test_stack, distribution):
    async with producers(test_stack) as pair:
        yield pair
