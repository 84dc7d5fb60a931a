"""Changes coalesce before they reach the push queue: one request per channel, kind and
subject, with the latest facts and the oldest change's time and trace (lag counts from the
first change the channel has not seen); a batch's stock changes of one SKU fan out once."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.domain.pushes import PushRequest, coalesce
from services.gateway.service_layer import outbound

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def request(channel: str, subject: str, second: int, fact: int) -> PushRequest:
    return PushRequest(
        channel, "stock", subject, {"n": fact}, T0 + timedelta(seconds=second), {"t": str(second)}
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["X", "Y"]), st.integers(0, 50)),
        max_size=40,
    )
)
def test_one_request_per_key_with_the_latest_facts_and_the_oldest_time(
    changes: list[tuple[str, str, int]],
) -> None:
    requests = [request(c, s, second, n) for n, (c, s, second) in enumerate(changes)]
    merged = coalesce(requests)
    keys = [(r.channel_id, r.kind, r.subject) for r in merged]
    assert keys == sorted(set(keys))
    for r in merged:
        mine = [q for q in requests if (q.channel_id, q.subject) == (r.channel_id, r.subject)]
        assert r.facts == mine[-1].facts
        oldest = min(q.event_time for q in mine)
        assert r.event_time == oldest
        assert r.trace_context == next(q for q in mine if q.event_time == oldest).trace_context


@dataclass
class FakeQueue:
    showing: dict[str, list[str]]
    queued: list[PushRequest] = field(default_factory=list)

    async def channels_by_stock(self, stock_channels: Collection[str]) -> dict[str, list[str]]:
        return {s: c for s, c in self.showing.items() if s in stock_channels}

    async def pushing_channels(self, channel_ids: Collection[str] | None = None) -> list[str]:
        every = sorted({c for cs in self.showing.values() for c in cs})
        return every if channel_ids is None else [c for c in every if c in channel_ids]

    async def enqueue(self, requests: Sequence[PushRequest]) -> None:
        self.queued += requests


async def test_a_batch_of_stock_changes_is_one_request_per_channel_and_sku():
    queue = FakeQueue({"MALL": ["MALL", "APP"], "POS": ["POS"]})
    changes = [
        outbound.StockChange(
            f"SKU-{n % 3}", ("MALL", "POS"), T0 + timedelta(seconds=100 - n), {"n": str(n)}
        )
        for n in range(90)
    ]
    await outbound.queue_stock_changes(queue, changes)
    assert len(queue.queued) == 3 * 3
    assert {(r.channel_id, r.subject) for r in queue.queued} == {
        (c, f"SKU-{n}") for c in ("APP", "MALL", "POS") for n in range(3)
    }
    # The oldest change of each SKU is the last one of the batch (times run backwards).
    assert {r.subject: r.event_time for r in queue.queued} == {
        f"SKU-{n}": T0 + timedelta(seconds=100 - (87 + n)) for n in range(3)
    }


async def test_changes_for_named_channels_reach_only_those_that_push():
    queue = FakeQueue({"MALL": ["MALL"], "POS": ["POS"]})
    await outbound.queue_changes(
        queue,
        [
            outbound.Change(("MALL", "GONE"), "price", "SKU-1", {}, T0, {}),
            outbound.Change(None, "listing", "SKU-2", {}, T0, {}),
        ],
    )
    assert sorted((r.channel_id, r.kind) for r in queue.queued) == [
        ("MALL", "listing"),
        ("MALL", "price"),
        ("POS", "listing"),
    ]
