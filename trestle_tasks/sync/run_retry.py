"""Whole-run retry: when a run failed only for transient reasons, run it again later.

A window already retries itself a few times; a run whose windows still failed (a long
outage, a database restart that outlasted them) is planned again from the watermark its
finished prefix left, after a backoff that doubles per attempt. Fatal failures (bad
credentials, a refused query) are not retried: the next scheduled run will meet them too,
and the alert says so.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from trestle_tasks.store.sync_log import FAILED, PARTIAL
from trestle_tasks.sync.model import RunPlan, WindowOutcome

MAX_RUN_ATTEMPTS = 3
BACKOFF_FACTOR = 4  # a run retry waits longer than a window retry: the cause was longer


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
    if any(not o.retriable for o in failed):
        return None
    delay = min(base_delay_s * BACKOFF_FACTOR * 2 ** (plan.attempt - 1), max_delay_s)
    return (rng or random).uniform(delay / 2, delay)  # equal jitter: retries spread out
