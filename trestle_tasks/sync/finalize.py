"""Closing a run: the sync log, the watermark over the finished prefix, the lock.

Idempotent, so a redelivered or repeated finalize changes nothing more: closing a closed
run returns it unchanged, the watermark only moves forward, and the lock is released only
while it still carries this run's fencing token.

A run whose windows all succeeded but whose watermark could not move to its upper bound
(a run with a newer fence holds it) closes `partial`, with the reason, never `succeeded`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from trestle_tasks.coordination.locks import LockGrant, LockKeeper, RunLock
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import FAILED, PARTIAL, SUCCEEDED, SyncRun, Watermark
from trestle_tasks.sync.model import RunPlan, WindowOutcome, new_run_id
from trestle_tasks.sync.phases import Figures, Phase

log = logging.getLogger(__name__)


def finished_prefix_upper(plan: RunPlan, outcomes: Iterable[WindowOutcome]) -> int | None:
    """Upper bound of the longest run of succeeded windows from the first one.

    A plan without windows found nothing to do in its whole range: all of it is done.
    """
    if not plan.windows:
        return plan.upper_ticks
    succeeded = {o.index for o in outcomes if o.status == SUCCEEDED}
    upper = None
    for window in plan.windows:
        if window.index not in succeeded:
            break
        upper = window.upper_ticks
    return upper


# Enough for the few statements of a finalize; the lock is released at its end.
LEASE_TO_FINALIZE_S = 60.0
# The index builder's lease, renewed every 10 s while it builds: a builder that died is
# replaced by the watchdog's next finalize 30 s later at most, not a minute (a second
# build started meanwhile only finds the indexes there: build_missing_indexes).
LEASE_TO_BUILD_S = 30.0

# Given the status a run closes with and its outcomes, more details to close it with (the
# Celery layer's scheduled whole-run retry, written in the same statement that closes it).
ExtraDetails = Callable[[str, list[WindowOutcome]], Mapping[str, Any]]


def finalize_run(
    plan: RunPlan, outcomes: Iterable[WindowOutcome], *, store: Store, lock: RunLock,
    extra_details: ExtraDetails | None = None,
) -> SyncRun | None:
    """Close the run from `outcomes`, one per window of the plan: `sync --local` has every
    window's once its walk returns, and the Celery layer finalizes only once the window
    ledger holds a settled outcome for every window (`WindowLedger.unfinished` is 0)."""
    outcomes = sorted(outcomes, key=lambda o: o.index)
    context = {"run_id": plan.run_id, "resource": plan.resource}
    phase = Phase(log, "finalize", context=context).start(
        "finalizing run %s: %d of %d window(s) reported", plan.run_id, len(outcomes),
        len(plan.windows))
    try:
        return _finalize(plan, outcomes, store=store, lock=lock, phase=phase,
                         extra_details=extra_details)
    except Exception as error:  # a failed phase still writes its end line
        phase.end("finalizing run %s failed: %s", plan.run_id, error,
                  figures=phase.figures(), outcome="failed")
        raise


def _finalize(plan: RunPlan, outcomes: list[WindowOutcome], *, store: Store, lock: RunLock,
              phase: Phase, extra_details: ExtraDetails | None = None) -> SyncRun | None:
    grant = LockGrant(plan.lock_name, plan.lock_owner, plan.fence)
    # Renewed, not only read: a lease that lapsed while the finalize waited in a queue is
    # resumed when nobody took the lock meanwhile (the fence proves it), and the watermark
    # moves only under a lease that has just been extended.
    lock_kept = lock.renew(grant, LEASE_TO_FINALIZE_S)
    if plan.deferred_indexes and lock_kept and not _build_deferred_indexes(plan, store, lock,
                                                                           grant):
        # Another delivery of this finalize (the watchdog sends one every half minute
        # while the run is open) is building them: that one closes the run.
        phase.end("run %s: its indexes are being built by another finalize", plan.run_id,
                  figures=phase.figures(), outcome="duplicate")
        return store.sync_log.get_run(plan.run_id, plan.resource)
    failed = [o for o in outcomes if o.status != SUCCEEDED]
    errors = [f"{o.window_id}: {o.error}" for o in failed if o.error]

    advanced, held_back = False, None
    upper = finished_prefix_upper(plan, outcomes)
    if upper is not None and lock_kept:
        advanced = store.sync_log.advance_watermark(
            plan.resource, Watermark(upper), run_id=plan.run_id, fence=plan.fence
        )
        held_back = None if advanced else watermark_held_back(store, plan, upper)
        if held_back is not None:
            errors.append(held_back)
    elif upper is not None:
        errors.append("the run lost its lock before it finished: the watermark was not moved")

    if not failed and lock_kept and held_back is None:
        status = SUCCEEDED
    elif upper is not None and lock_kept:
        status = PARTIAL
    else:
        status = FAILED
    details = {
        "windows": [o.to_dict() for o in outcomes],
        "watermark_advanced": advanced,
        "watermark_held_back": held_back is not None,
        "upper": Watermark(plan.upper_ticks).text,
        "notes": list(plan.notes),
    }
    if extra_details is not None:
        details.update(extra_details(status, outcomes))
    run = store.sync_log.close_run(plan.run_id, plan.resource, status=status,
                                  error="; ".join(errors)[:2000] or None, details=details)
    if lock_kept:
        lock.release(grant)
    run = run if run is not None else store.sync_log.get_run(plan.run_id, plan.resource)
    # The end line is the run's summary: its figures are the whole run's, from the sync log.
    phase.end("run %s %s: %d/%d windows succeeded, watermark %s", plan.run_id, status,
              len(outcomes) - len(failed), len(plan.windows),
              "advanced" if advanced else "unchanged", figures=run_figures(run),
              outcome=status, finalize_s=round(phase.figures().duration_s, 3),
              rejected=run.records_rejected if run else 0)
    return run


def _build_deferred_indexes(plan: RunPlan, store: Store, lock: RunLock,
                            grant: LockGrant) -> bool:
    """Build the indexes a first load deferred; False when another delivery of this
    finalize is building them now. Under the run's lease, renewed while it takes (minutes
    at millions of rows): a run planned meanwhile must not load into a table being
    indexed. A lost lease leaves them to the next run's planning."""
    builder = lock.acquire(f"{plan.lock_name}/indexes", owner=new_run_id(),
                           ttl_s=LEASE_TO_BUILD_S)
    if builder is None:
        return False
    context = {"run_id": plan.run_id, "resource": plan.resource}
    log.info("run %s: building the secondary indexes deferred by the first load",
             plan.run_id, extra={**context, "index_build": "start"})
    try:
        with LockKeeper(lock, grant, LEASE_TO_FINALIZE_S), \
                LockKeeper(lock, builder, LEASE_TO_BUILD_S):
            built = store.build_missing_indexes(plan.resource)
    finally:
        lock.release(builder)
    log.info("run %s: built %d secondary index(es) deferred by the first load", plan.run_id,
             len(built), extra={**context, "indexes": built, "index_build": "end"})
    return True


def watermark_held_back(store: Store, plan: RunPlan, upper: int) -> str | None:
    """Why the watermark stays below `upper` although the run got that far; None when it
    is already there or beyond (a repeated finalize, say), which is no fault.

    A run that fetched everything but left the watermark behind is not a success: the
    next runs fetch the same records again, and the lag grows without a word otherwise.
    """
    stored = store.sync_log.read_watermark_fence(plan.resource)
    if stored is not None and stored[0] >= Watermark(upper):
        return None
    target = Watermark(upper).text
    if stored is None:
        return f"the watermark was not advanced to {target}: none is stored"
    mark, fence = stored
    if fence is not None and fence > plan.fence:
        return (f"the watermark was not advanced to {target}: it is held at {mark.text} by "
                f"a run with a newer fence ({fence} > {plan.fence})")
    return f"the watermark was not advanced to {target}: it stays at {mark.text}"


def run_figures(run: SyncRun | None) -> Figures:
    """A closed run's figures: wall time from start to finish, and its sync-log counts."""
    if run is None:
        return Figures(0.0)
    seconds = ((run.finished_at - run.started_at).total_seconds()
               if run.finished_at and run.started_at else 0.0)
    return Figures(max(seconds, 0.0), run.records_fetched, run.api_requests, run.api_retries,
                   run.api_rate_limited)
