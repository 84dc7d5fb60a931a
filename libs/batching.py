"""Group commit: many concurrent callers, one batch of work at a time.

A caller ``await batcher.submit(item)``s and gets its own result; a worker takes everything
that queued while the previous batch was running and hands it to ``flush`` in one go. No
timer: under light load a batch is one item and nobody waits; under load a batch holds what
arrived during one flush, so the cost of a transaction or a call is shared by all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class Batcher(Generic[T, R]):
    """``flush(items)`` answers one outcome per item, in order (a result or an exception
    for that item alone); if ``flush`` itself raises, every item of the batch gets that
    error. A caller that stops waiting (cancelled, timed out) does not take its item back:
    work handed to a flush is finished — the operations batched here are idempotent, so
    the caller's retry meets the same outcome."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 100,
        concurrency: int = 1,
        name: str = "batch",
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")
        self._flush = flush
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.name = name
        self._queue: list[_Pending[T, R]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.items = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        if len(self._workers) < self.concurrency:
            worker = asyncio.create_task(self._drain(), name=f"{self.name}-flush")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self.batches += 1
            self.items += len(batch)
            try:
                outcomes = await self._flush([p.item for p in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(
                        f"{self.name}: flush answered {len(outcomes)} outcomes for "
                        f"{len(batch)} items"
                    )
            except BaseException as error:
                for pending in batch:
                    _settle_error(pending.future, error)
                if isinstance(error, asyncio.CancelledError):
                    for pending in self._queue:
                        _settle_error(pending.future, error)
                    self._queue.clear()
                    raise
                continue
            for pending, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    _settle_error(pending.future, outcome)
                elif not pending.future.done():
                    pending.future.set_result(outcome)

    async def close(self) -> None:
        """Wait for the batches in flight (callers already queued are still served)."""
        while self._workers:
            await asyncio.gather(*list(self._workers), return_exceptions=True)


def _settle_error(future: asyncio.Future[R], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        # Mark it retrieved: a caller that gave up must not make asyncio log it.
        future.exception()
