"""Whole-run retry: when a run failed only for transient reasons, run it again later.

A window already retries itself a few times; a run whose windows still failed (a long
outage, a database restart that outlasted them) is planned again from the watermark its
finished prefix left, after a backoff that doubles per attempt. Fatal failures (bad
credentials, a refused query) are not retried: the next scheduled run will meet them too,
and the alert says so.

Nor is waiting without progress: a window whose request got no successful answer from
Trestle for a whole TRESTLE_RETRY_BUDGET (NoProgressError) is not retried as a window (it
already waited a budget), and a run whose windows made no progress at all (nothing fetched,
every failure of that kind) is not retried as a whole. Either would only spend another
budget on a service that is gone, over an hour before anyone is told; the run fails at once
with the reason, and the next scheduled run tries again. Other transient failures of a
window (the database, a lost lock, an expired replication link), and a run that made
progress, keep their retries. Progress is judged from each window's last attempt.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.sync_log import FAILED, PARTIAL, SUCCEEDED
from trestle_tasks.sync.model import RunPlan, WindowOutcome

MAX_RUN_ATTEMPTS = 3
BACKOFF_FACTOR = 4  # a run retry waits longer than a window retry: the cause was longer
WINDOW_BACKOFF_CAP = 20  # a window's retry delay is at most this many SYNC_RETRY_DELAYs
# Error kinds (WindowOutcome.error_kind) that mean: a whole retry budget with no successful
# answer from Trestle.
NO_PROGRESS_KINDS = frozenset({"NoProgressError"})


def spent_budget_waiting(outcome: WindowOutcome) -> bool:
    """The window failed after a whole retry budget without a successful answer: trying it
    again at once would only spend another budget on the same silence."""
    return outcome.status == FAILED and outcome.error_kind in NO_PROGRESS_KINDS


def window_retry_policy(base_delay_s: float) -> RetryPolicy:
    """A window's redeliveries: doubling from SYNC_RETRY_DELAY, at most WINDOW_BACKOFF_CAP
    of them."""
    return RetryPolicy(base_delay_s=base_delay_s,
                       max_delay_s=base_delay_s * WINDOW_BACKOFF_CAP)


def run_retry_policy(base_delay_s: float, max_delay_s: float) -> RetryPolicy:
    """A whole run's retries: BACKOFF_FACTOR times a window's first delay, doubling, at
    most `max_delay_s`."""
    first = min(base_delay_s * BACKOFF_FACTOR, max_delay_s)
    return RetryPolicy(base_delay_s=first, max_delay_s=max_delay_s)


def window_retry_delay(outcome: WindowOutcome, retries: int, *, base_delay_s: float,
                       max_retries: int) -> float | None:
    """Seconds until a transiently failed window is handed out again (doubling from
    `base_delay_s`, SYNC_RETRY_DELAY); None: its failure is final."""
    if outcome.status != FAILED or not outcome.retriable or retries >= max_retries:
        return None
    if spent_budget_waiting(outcome):
        return None
    return window_retry_policy(base_delay_s).backoff_ceiling(retries)


def run_made_no_progress(outcomes: Iterable[WindowOutcome]) -> bool:
    """No window succeeded or fetched anything, and every failure was a budget spent
    without a successful answer (windows that never reported are no progress either)."""
    outcomes = list(outcomes)
    failed = [o for o in outcomes if o.status == FAILED]
    return (bool(failed) and all(spent_budget_waiting(o) for o in failed)
            and not any(o.status == SUCCEEDED or o.fetched for o in outcomes))


def no_progress_reason(outcomes: Iterable[WindowOutcome]) -> str | None:
    """Why the run is not retried as a whole, when it made no progress; None otherwise."""
    outcomes = list(outcomes)
    if not run_made_no_progress(outcomes):
        return None
    first = next(o for o in outcomes if o.status == FAILED)
    return ("not retried: no window made progress, every one spent its retry budget "
            "without a successful answer from Trestle (the next scheduled run tries again)"
            + (f"; {first.window_id}: {first.error}" if first.error else ""))


def run_retry_delay(
    plan: RunPlan,
    status: str,
    outcomes: Iterable[WindowOutcome],
    *,
    base_delay_s: float,
    max_delay_s: float = 3600.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the run's next attempt, or None when it must not be retried."""
    if status not in (FAILED, PARTIAL) or plan.attempt >= MAX_RUN_ATTEMPTS:
        return None
    outcomes = list(outcomes)
    failed = [o for o in outcomes if o.status == FAILED]
    never_reported = len(plan.windows) > len(outcomes)
    if not failed and not never_reported:
        # Every window succeeded: the lock was lost, or a run with a newer fence holds the
        # watermark. Another run is in charge; running this one again would change nothing.
        return None
    if any(not o.retriable for o in failed) or run_made_no_progress(outcomes):
        return None
    # Equal jitter: runs retried at once spread out.
    return run_retry_policy(base_delay_s, max_delay_s).delay(plan.attempt - 1, rng=rng)
