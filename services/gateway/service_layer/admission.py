"""Back-pressure for order captures: at most ``max_inflight`` orders of this process are
being captured at once; a request waits at most ``wait_seconds`` for a slot and is
otherwise refused at once with "busy, retry after N s" (HTTP 503 + Retry-After, gRPC
UNAVAILABLE). A channel gets a fast, explicit answer instead of a time-out, and nothing was
accepted, so nothing is lost: its payload is stored with the answer and the channel's retry
is idempotent (once per channel order id).

Settings: OMNI_GATEWAY_MAX_INFLIGHT_ORDERS (16), OMNI_GATEWAY_ADMISSION_WAIT_SECONDS (0.25),
OMNI_GATEWAY_RETRY_AFTER_SECONDS (1).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.gateway import metrics

DEFAULT_MAX_INFLIGHT = 16
DEFAULT_WAIT_SECONDS = 0.25
DEFAULT_RETRY_AFTER_SECONDS = 1


class Busy(Exception):
    """The platform cannot take this request now; come back after ``retry_after`` s."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(f"{reason}; retry after {retry_after}s")
        self.retry_after = retry_after
        self.reason = reason


class Admission:
    def __init__(
        self,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        retry_after: int = DEFAULT_RETRY_AFTER_SECONDS,
    ) -> None:
        self.max_inflight = max_inflight
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self._slots = asyncio.Semaphore(max_inflight)

    @property
    def in_flight(self) -> int:
        return self.max_inflight - self._slots._value

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await self._slots.acquire()
            except TimeoutError:
                metrics.SHED.labels(reason="saturated").inc()
                raise Busy(self.retry_after, "the platform is busy") from None
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
