"""When the flash-sale harness counts the platform as settled (tests/bench/quiescence.py):
the CPU rate over a sliding window, against the idle rate once it is known and between two
consecutive windows before that."""

from __future__ import annotations

import pytest

from tests.bench.quiescence import ConsumerLag, CpuWindow, OutboxBacklog, QuiescenceWatch


def window(rates: list[float], step: float = 0.5) -> CpuWindow:
    """Samples every ``step`` seconds, the platform using ``rates[i]`` cores in step i."""
    w = CpuWindow()
    cpu = 0.0
    w.add(0.0, cpu)
    for i, rate in enumerate(rates, start=1):
        cpu += rate * step
        w.add(i * step, cpu)
    return w


def watch(idle_rate: float | None) -> QuiescenceWatch:
    def unused() -> float:
        raise AssertionError("not called by settled()")

    return QuiescenceWatch(
        outbox=OutboxBacklog({}),
        lag=ConsumerLag("127.0.0.1:9", "unused."),
        cpu_seconds=unused,
        last_push_at=unused,
        check_alive=lambda: None,
        idle_rate=idle_rate,
    )


def test_rate_is_unknown_until_the_window_is_sampled():
    assert CpuWindow().rate(2.0) is None
    assert window([0.5, 0.5]).rate(2.0) is None


def test_rate_over_the_last_seconds_and_an_earlier_window():
    w = window([1.0] * 4 + [0.2] * 4)
    assert w.rate(2.0) == pytest.approx(0.2)
    assert w.rate(2.0, ending_age=2.0) == pytest.approx(1.0)


def test_settled_near_the_idle_rate_only():
    busy = window([0.1] * 4 + [0.9] * 4)
    calm = window([0.9] * 4 + [0.12] * 4)
    assert watch(idle_rate=0.1).settled(busy) == (False, pytest.approx(0.9))
    assert watch(idle_rate=0.1).settled(calm) == (True, pytest.approx(0.12))


def test_before_the_idle_rate_is_known_two_windows_must_agree():
    falling = window([0.9] * 4 + [0.2] * 4)
    steady = window([0.2] * 4 + [0.21] * 4)
    assert watch(idle_rate=None).settled(falling)[0] is False
    assert watch(idle_rate=None).settled(steady)[0] is True
    assert watch(idle_rate=None).settled(window([0.2] * 4))[0] is False
