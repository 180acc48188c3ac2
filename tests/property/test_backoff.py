"""Exponential backoff: delays grow, are capped, honour Retry-After."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.core.errors import (
    ODataRequestError,
    RateLimitedError,
    RetriesExhaustedError,
    TransientServerError,
)
from trestle_tasks.core.retry import RetryPolicy, call_with_retries, parse_retry_after

policies = st.builds(
    RetryPolicy,
    budget_s=st.floats(0, 3600),
    base_delay_s=st.floats(0.01, 5),
    max_delay_s=st.floats(5, 120),
    max_retry_after_s=st.floats(1, 600),
)


@given(policies, st.integers(0, 2**31), st.integers(1, 40))
def test_delays_never_shrink_and_stay_under_the_cap(policy, seed, attempts):
    rng = random.Random(seed)
    delays = [policy.delay(n, rng=rng) for n in range(attempts)]
    assert all(0 < d <= policy.max_delay_s for d in delays)
    for n, delay in enumerate(delays):
        assert policy.backoff_ceiling(n) / 2 <= delay <= policy.backoff_ceiling(n)
    for n in range(attempts - 1):
        if policy.backoff_ceiling(n + 1) < policy.max_delay_s:
            # Below the cap the ceiling doubles, so equal jitter can never shrink a delay.
            assert policy.backoff_ceiling(n + 1) == pytest.approx(2 * policy.backoff_ceiling(n))
            assert delays[n + 1] >= delays[n]


@given(policies, st.integers(0, 100), st.floats(-1e6, 1e6))
def test_retry_after_wins_and_is_clamped(policy, attempt, retry_after):
    delay = policy.delay(attempt, retry_after=retry_after)
    assert delay == min(max(retry_after, 0.0), policy.max_retry_after_s)


@given(st.integers(-100, 100_000), st.floats(1, 600))
def test_retry_after_seconds_and_http_date_agree(seconds, cap):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    as_date = format_datetime(now + timedelta(seconds=seconds), usegmt=True)
    expected = min(max(float(seconds), 0.0), cap)
    assert parse_retry_after(str(seconds), now=now, cap_s=cap) == expected
    assert parse_retry_after(as_date, now=now, cap_s=cap) == pytest.approx(expected)


@pytest.mark.parametrize("junk", [None, "", "soon", "NaN", "Mon, 99 Foo 2020"])
def test_unreadable_retry_after_is_ignored(junk):
    assert parse_retry_after(junk, now=datetime.now(UTC), cap_s=60) is None


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@given(st.floats(1, 600), st.integers(0, 2**31))
def test_budget_is_time_not_attempts(budget, seed):
    clock = FakeClock()
    policy = RetryPolicy(budget_s=budget, base_delay_s=1, max_delay_s=32)

    def always_busy():
        raise TransientServerError("503", status=503)

    with pytest.raises(RetriesExhaustedError) as caught:
        call_with_retries(always_busy, policy, clock=clock, sleep=clock.sleep,
                          rng=random.Random(seed))
    assert sum(clock.sleeps) <= budget
    assert isinstance(caught.value.__cause__, TransientServerError)


def test_retry_after_from_a_429_is_used_then_success():
    clock = FakeClock()
    answers = iter([RateLimitedError("429", status=429, retry_after=7.0), "page"])

    def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert call_with_retries(attempt, RetryPolicy(), clock=clock, sleep=clock.sleep) == "page"
    assert clock.sleeps == [7.0]


def test_fatal_errors_are_not_retried():
    calls = []

    def attempt():
        calls.append(1)
        raise ODataRequestError("400", status=400)

    with pytest.raises(ODataRequestError):
        call_with_retries(attempt, RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1
