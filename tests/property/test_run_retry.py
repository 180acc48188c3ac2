"""Whole-run retry decisions: only transient failures, a bounded number of times, with a
backoff that grows per attempt."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.run_retry import (
    BACKOFF_FACTOR,
    MAX_RUN_ATTEMPTS,
    no_progress_reason,
    run_made_no_progress,
    run_retry_delay,
    window_retry_delay,
)

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


# --- one budget of no progress per run --------------------------------------------------

# A window's outcome: how it ended, whether it fetched anything, and what failed it.
KINDS = [None, "NoProgressError", "RetriesExhaustedError", "StoreUnavailableError",
         "BadCredentialsError", "LockLostError"]
window_shapes = st.tuples(st.sampled_from(["succeeded", "failed"]), st.integers(0, 3),
                          st.sampled_from(KINDS), st.booleans())


def outcome_from(i, shape):
    status, fetched, kind, retriable = shape
    if status == "succeeded":
        return WindowOutcome(f"w{i}", i, status, fetched=fetched)
    if kind == "NoProgressError":
        retriable = True  # a NoProgressError is a RetriesExhaustedError: retriable
    return WindowOutcome(f"w{i}", i, status, fetched=fetched, retriable=retriable,
                         error=f"{kind}: boom" if kind else "boom", error_kind=kind)


@given(st.lists(window_shapes, min_size=1, max_size=8), st.sampled_from(STATUSES),
       st.integers(1, MAX_RUN_ATTEMPTS + 1), st.integers(0, 3), st.floats(0.1, 100),
       st.integers(0, 2**32))
def test_work_that_made_no_progress_is_never_retried(shapes, status, attempt, unreported,
                                                     base, seed):
    outcomes = [outcome_from(i, shape) for i, shape in enumerate(shapes)]
    plan = plan_with(len(outcomes) + unreported, attempt)
    delay = run_retry_delay(plan, status, outcomes, base_delay_s=base,
                            rng=random.Random(seed))
    no_progress = (any(o.status == "failed" for o in outcomes)
                   and all(o.error_kind == "NoProgressError"
                           for o in outcomes if o.status == "failed")
                   and not any(o.status == "succeeded" or o.fetched for o in outcomes))
    assert run_made_no_progress(outcomes) == no_progress
    if no_progress:
        assert delay is None
        assert "not retried" in no_progress_reason(outcomes)
    else:
        assert no_progress_reason(outcomes) is None
    for retries, outcome in enumerate(outcomes):
        window_delay = window_retry_delay(outcome, retries % 4, base_delay_s=base,
                                          max_retries=3)
        if outcome.error_kind == "NoProgressError":
            assert window_delay is None  # it already waited a whole budget
        elif outcome.status == "failed" and outcome.retriable and retries % 4 < 3:
            # Any other transient failure keeps today's doubling delays.
            assert window_delay == min(base * 2 ** (retries % 4), base * 20)
        else:
            assert window_delay is None


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3)), min_size=1, max_size=8),
       st.integers(0, 2**32))
def test_a_run_that_made_progress_keeps_its_retries(shapes, seed):
    """A window that fetched records, or succeeded, makes the run one with progress: its
    transient failures (budget ones included) are retried as a whole as before."""
    outcomes = [WindowOutcome(f"w{i}", i, "succeeded", fetched=fetched) if ok else
                WindowOutcome(f"w{i}", i, "failed", fetched=fetched, retriable=True,
                              error_kind="NoProgressError")
                for i, (ok, fetched) in enumerate(shapes)]
    outcomes.append(WindowOutcome("last", len(shapes), "failed", retriable=True,
                                  error_kind="NoProgressError"))
    delay = run_retry_delay(plan_with(len(outcomes), 1), "partial", outcomes, base_delay_s=30,
                            rng=random.Random(seed))
    assert delay is not None and 60 <= delay <= 120


def verdict_after(service_gone_at, windows, budget, base, seed):
    """When the final verdict on a run comes, in a model of the cluster whose Trestle goes
    away at `service_gone_at` for good: windows (each a walk of so many seconds) run at
    once; a request waits at most `budget` without an answer, then the window fails with
    NoProgressError; the decisions under test say what is retried, and after how long.
    Returns (seconds until nothing more is retried, run attempts, window retries)."""
    rng = random.Random(seed)
    now, attempt, window_retries = 0.0, 1, 0
    while True:
        plan = plan_with(len(windows), attempt)
        if now >= service_gone_at:  # planning itself gets no answer: the run fails
            return now + budget, attempt, window_retries
        outcomes, ends = [], []
        for i, walk in enumerate(windows):
            start, retries = now, 0
            while True:
                if start + walk <= service_gone_at:
                    outcome = WindowOutcome(f"w{i}", i, "succeeded", fetched=int(walk) + 1)
                    end = start + walk
                else:
                    fetched = max(0, int(service_gone_at - start))
                    outcome = WindowOutcome(f"w{i}", i, "failed", fetched=fetched,
                                            retriable=True, error_kind="NoProgressError")
                    end = max(start, service_gone_at) + budget
                retry_in = window_retry_delay(outcome, retries, base_delay_s=base,
                                              max_retries=3)
                if retry_in is None:
                    break
                start, retries, window_retries = end + retry_in, retries + 1, window_retries + 1
            outcomes.append(outcome)
            ends.append(end)
        now = max(ends)
        status = "succeeded" if all(o.status == "succeeded" for o in outcomes) else "partial"
        delay = run_retry_delay(plan, status, outcomes, base_delay_s=base, rng=rng)
        if delay is None:
            return now, attempt, window_retries
        now, attempt = now + delay, attempt + 1


@given(st.floats(0, 2000), st.lists(st.floats(0.5, 600), min_size=1, max_size=8),
       st.floats(10, 600), st.floats(1, 120), st.integers(0, 2**32))
def test_an_unreachable_service_is_given_up_on_after_one_budget_of_no_progress(
        gone_at, windows, budget, base, seed):
    verdict, attempts, window_retries = verdict_after(gone_at, windows, budget, base, seed)
    assert window_retries == 0  # a window that waited out a budget is never retried
    if gone_at < 1 and all(w > gone_at for w in windows):
        # Gone before anything was fetched (the model fetches a record a second): one
        # budget, and no retry of any kind.
        assert attempts == 1
        assert verdict <= gone_at + budget
    longest_done = max([w for w in windows if w <= gone_at], default=0.0)
    run_delay = base * BACKOFF_FACTOR  # the first whole-run retry's delay at most
    # Progress made before the service went: the run is retried once (its delay), and
    # that attempt, finding nothing, is the verdict. Never a budget per window retry.
    assert attempts <= 2
    assert verdict <= max(gone_at, longest_done) + budget + run_delay + budget


def test_what_a_run_that_made_no_progress_says_and_what_the_window_delays_are():
    waiting = WindowOutcome("w0", 0, "failed", retriable=True, error_kind="NoProgressError",
                            error="no successful answer from Trestle at api.example.com")
    assert window_retry_delay(waiting, 0, base_delay_s=30, max_retries=3) is None
    assert run_retry_delay(plan_with(1, 1), "failed", [waiting], base_delay_s=30) is None
    reason = no_progress_reason([waiting])
    assert "api.example.com" in reason and "not retried" in reason
    store_down = WindowOutcome("w0", 0, "failed", retriable=True,
                               error_kind="RetriesExhaustedError")
    assert [window_retry_delay(store_down, n, base_delay_s=30, max_retries=3)
            for n in range(4)] == [30, 60, 120, None]
    assert run_retry_delay(plan_with(1, 1), "failed", [store_down], base_delay_s=30) is not None
