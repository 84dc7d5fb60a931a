"""Token bucket and push retry rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.domain import pushes, rate_limit
from services.gateway.domain.rate_limit import BucketState


def test_a_new_bucket_allows_a_burst_then_refuses_with_retry_after() -> None:
    state = None
    allowed = 0
    for _ in range(5):
        decision = rate_limit.take(state, rate=1, burst=3, now=100.0)
        state = decision.state
        allowed += decision.allowed
    assert allowed == 3
    assert decision.retry_after == 1
    assert rate_limit.take(state, rate=1, burst=3, now=101.0).allowed


@given(
    st.floats(min_value=0, max_value=50),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=1, max_value=200),
    st.lists(st.floats(min_value=0, max_value=5), max_size=50),
)
def test_tokens_stay_within_zero_and_burst_and_never_exceed_the_rate(
    start: float, rate: int, burst: int, gaps: list[float]
) -> None:
    state = BucketState(min(start, burst), 0.0)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        decision = rate_limit.take(state, rate, burst, now)
        state = decision.state
        allowed += decision.allowed
        assert 0.0 <= state.tokens <= burst
        if not decision.allowed:
            assert decision.retry_after >= 1
    # Over any run, what was allowed is at most the initial tokens plus what refilled.
    assert allowed <= min(start, burst) + rate * now + 1e-6


def test_a_clock_going_back_refills_nothing() -> None:
    decision = rate_limit.take(BucketState(0.0, 100.0), rate=10, burst=10, now=50.0)
    assert not decision.allowed


def test_zero_settings_mean_defaults() -> None:
    assert rate_limit.limits(0, 0) == (rate_limit.DEFAULT_RATE_PER_SECOND, rate_limit.DEFAULT_BURST)


@given(st.integers(min_value=1, max_value=100))
def test_backoff_doubles_and_is_capped(attempts: int) -> None:
    delay = pushes.backoff(attempts)
    assert 0 < delay <= pushes.MAX_DELAY_SECONDS
    assert pushes.backoff(attempts + 1) >= delay


def test_after_the_limit_a_push_is_dead() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert pushes.after_failure(1, now, max_attempts=3, base=1.0) == now + timedelta(seconds=1)
    assert pushes.after_failure(2, now, max_attempts=3, base=1.0) == now + timedelta(seconds=2)
    assert pushes.after_failure(3, now, max_attempts=3, base=1.0) is None


def test_lag_is_never_negative() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert pushes.lag_seconds(now + timedelta(seconds=1), now) == 0.0
    assert pushes.lag_seconds(now - timedelta(seconds=2), now) == 2.0
