"""Group commit (libs/batching.py): concurrent callers share flushes, each gets its own
outcome, and a failing flush reaches exactly the callers of that batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from libs.batching import Batcher


class Refused(Exception):
    pass


async def test_callers_that_arrive_during_a_flush_share_the_next_one():
    sizes: list[int] = []
    gate = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        sizes.append(len(items))
        await gate.wait()
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 12)]
    assert sizes == [1, 10]


async def test_an_outcome_that_is_an_exception_reaches_only_its_caller():
    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        return [Refused(str(i)) if i % 2 else i for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
    assert [r for r in results if not isinstance(r, BaseException)] == [0, 2, 4]
    assert [str(r) for r in results if isinstance(r, Refused)] == ["1", "3", "5"]


async def test_a_flush_that_raises_fails_its_batch_and_the_next_batch_still_runs():
    calls = 0

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Refused("database away")
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush)
    with pytest.raises(Refused):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2


async def test_batches_never_exceed_the_maximum_and_keep_submission_order():
    seen: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(list(items))
        await asyncio.sleep(0)
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush, max_batch=4)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == list(range(10))
    assert all(len(batch) <= 4 for batch in seen)
    assert [i for batch in seen for i in batch] == list(range(10))


async def test_a_caller_that_gives_up_does_not_cancel_the_work_of_its_batch():
    done: list[int] = []
    gate = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        await gate.wait()
        done.extend(items)
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush)
    impatient = asyncio.create_task(batcher.submit(7))
    await asyncio.sleep(0)
    impatient.cancel()
    gate.set()
    await batcher.close()
    assert done == [7]


async def test_a_flush_answering_the_wrong_number_of_outcomes_is_an_error_for_all():
    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        return []

    batcher: Batcher[int, int] = Batcher(flush)
    with pytest.raises(RuntimeError, match="outcomes"):
        await batcher.submit(1)
