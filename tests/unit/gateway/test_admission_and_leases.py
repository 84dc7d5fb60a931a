"""Back-pressure slots and rate-limit leases (pure or in-memory)."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.domain import rate_limit
from services.gateway.service_layer.admission import Admission, Busy


async def test_a_request_beyond_the_slots_is_refused_after_the_short_wait() -> None:
    admission = Admission(max_inflight=2, wait_seconds=0.01, retry_after=3)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    assert admission.in_flight == 2
    with pytest.raises(Busy) as refused:
        async with admission.slot():
            pass
    assert refused.value.retry_after == 3
    release.set()
    await asyncio.gather(*holders)
    async with admission.slot():
        assert admission.in_flight == 1
    assert admission.in_flight == 0


async def test_a_waiting_request_gets_the_slot_freed_within_the_wait() -> None:
    admission = Admission(max_inflight=1, wait_seconds=5)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            entered.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await entered.wait()
    asyncio.get_running_loop().call_soon(release.set)
    async with admission.slot():
        assert admission.in_flight == 1
    await holder


def test_lease_size_is_a_slice_of_the_rate_bounded_by_the_burst() -> None:
    assert rate_limit.lease_size(1, 2) == 1
    assert rate_limit.lease_size(0, 0) == 3  # defaults 50/s, burst 100
    assert rate_limit.lease_size(1000, 1000) == rate_limit.MAX_LEASE
    assert rate_limit.lease_size(1000, 50) == 5


def test_a_local_lease_is_spent_one_by_one_and_expires() -> None:
    lease = rate_limit.LocalLease()
    assert not lease.take(100.0)
    lease.refill(2, 100.0)
    assert lease.take(100.1) and lease.take(100.2)
    assert not lease.take(100.3)
    lease.refill(5, 200.0)
    assert not lease.take(200.0 + rate_limit.LEASE_TTL_SECONDS)


def test_retry_after_counts_whole_seconds_until_one_token() -> None:
    assert rate_limit.retry_after(0.0, 1, 2) == 1
    assert rate_limit.retry_after(0.0, 0, 0) == 1
    assert rate_limit.retry_after(-3.5, 1, 1) == 5
