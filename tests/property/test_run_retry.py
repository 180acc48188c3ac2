"""Whole-run retry decisions: only transient failures, a bounded number of times, with a
backoff that grows per attempt."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.run_retry import BACKOFF_FACTOR, MAX_RUN_ATTEMPTS, run_retry_delay

STATUSES = ["succeeded", "failed", "partial", "abandoned"]


def plan_with(windows: int, attempt: int) -> RunPlan:
    return RunPlan("r", "Property", "ListingKey", 0, 10, tuple(
        Window(i, i, i + 1, 1) for i in range(windows)), "l", "o", 1, attempt=attempt)


outcome_lists = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8)


@given(outcome_lists, st.sampled_from(STATUSES), st.integers(1, MAX_RUN_ATTEMPTS + 2),
       st.floats(0.1, 100), st.integers(0, 2**32))
def test_only_transient_failures_are_retried_with_growing_backoff(
        shapes, status, attempt, base, seed):
    plan = plan_with(len(shapes), attempt)
    outcomes = [WindowOutcome(f"w{i}", i, "succeeded" if ok else "failed", retriable=transient)
                for i, (ok, transient) in enumerate(shapes)]
    delay = run_retry_delay(plan, status, outcomes, base_delay_s=base, max_delay_s=3600,
                            rng=random.Random(seed))
    failed = [o for o in outcomes if o.status == "failed"]
    should_retry = (status in ("failed", "partial") and attempt < MAX_RUN_ATTEMPTS
                    and failed and all(o.retriable for o in failed))
    assert (delay is not None) == bool(should_retry)
    if delay is not None:
        ceiling = min(base * BACKOFF_FACTOR * 2 ** (attempt - 1), 3600)
        assert ceiling / 2 <= delay <= ceiling


def test_windows_that_never_reported_are_a_reason_to_retry():
    plan = plan_with(3, 1)
    done = [WindowOutcome("w0", 0, "succeeded")]
    assert run_retry_delay(plan, "partial", done, base_delay_s=1) is not None
    assert run_retry_delay(plan_with(1, 1), "failed", done, base_delay_s=1) is None
