"""Delivering a run's windows to the workers, and looking after what was delivered.

The protocol around the window ledger (sync/ledger.py), Celery-free: which delivery of a
window runs it, what a finished window sends next, what the watchdog does with windows
nobody works on and with runs no ledger drives, and a run retried as a whole. What it
decides to send, the Celery layer sends: `Senders` holds its callbacks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trestle_tasks.coordination.locks import LockGrant, RunLock, lock_name
from trestle_tasks.store.sync_log import ABANDONED, FAILED, PLANNING, SyncLog, SyncRun
from trestle_tasks.sync.handout import Gate, hand_out_all, slot_holder
from trestle_tasks.sync.ledger import WAIT, LedgerWindow, Requeued, WindowLedger
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.plan import new_run_id
from trestle_tasks.sync.run_retry import MAX_RUN_ATTEMPTS, no_progress_reason, run_retry_delay

log = logging.getLogger(__name__)

WINDOW_MAX_RETRIES = 3  # transient failures of one window, before its run fails it
# Deliveries of one window whose worker died (SIGKILL, out of memory) before it is failed
# for good: a window that kills its worker every time is not handed out forever.
WINDOW_MAX_CRASHES = 3
# A queued window whose message has not started after this many times
# SYNC_WINDOW_STALE_SECONDS (90 s by default) is taken for lost (a Redis restart emptied
# the queue, a killed worker held it) and sent again; the first message, should it still
# arrive, finds an old token and is dropped. Longer than a running window's limit: a
# message may wait for a worker process that is finishing other work.
QUEUED_STALE_FACTOR = 2.25
# A planner that died is replaced this many times under the same run id; a run whose
# planner dies every time (out of memory in a huge census) fails instead of looping.
MAX_REPLANS = 3


@dataclass(frozen=True)
class Senders:
    """The messages the protocol sends, as the Celery layer sends them."""

    window: Callable[[Mapping[str, Any], Window, int], None]  # plan header, window, token
    finalize: Callable[[str, str], None]  # run id, resource
    hand_out_later: Callable[[float], None]  # seconds from now
    # resource, the plan task's options (run_id, full, attempt, feed), countdown, task id
    plan: Callable[[str, Mapping[str, Any], float | None, str | None], None]


def hand_out(ledger: WindowLedger, gate: Gate, lock: RunLock, senders: Senders, *,
             lease_s: float, first: tuple[str, str] | None = None) -> int:
    """Send windows of the open runs (`first` before the others) while the gate's slots
    are free; returns how many were sent."""
    runs = ledger.open_runs()
    if first is not None:
        runs = [first] + [r for r in runs if r != first]
    headers = {run: header for run in runs if (header := ledger.header(*run)) is not None}
    renew_leases(lock, headers.values(), lease_s)

    def send(run_id: str, resource: str, window: Window, token: int) -> None:
        senders.window(headers[(run_id, resource)], window, token)

    return hand_out_all(ledger, gate, list(headers), send, slot_ttl_s=lease_s)


def renew_leases(lock: RunLock, headers: Iterable[Mapping[str, Any]], lease_s: float) -> None:
    """Renew the lease of every open run whose windows wait for a slot: every finishing
    window hands out, so their lease does not hang on the watchdog alone, whose task may
    wait behind busy workers for longer than a lease."""
    for header in headers:
        try:
            lock.renew(LockGrant(header["lock_name"], header["lock_owner"], header["fence"]),
                       lease_s)
        except Exception as error:  # the watchdog renews it too
            log.warning("could not renew the lease of run %s: %s", header.get("run_id"),
                        type(error).__name__)


def claim(ledger: WindowLedger, ids: tuple[str, str, str], token: int, *, stale_s: float,
          sleep: Callable[[float], None] = time.sleep) -> tuple[str, LedgerWindow | None]:
    """Whether this delivery runs the window. A redelivery of a dispatch whose worker died
    (RabbitMQ hands it back at once) waits until the dead worker's heartbeat is stale; if
    the heartbeat goes on, the first delivery lives and this one is dropped."""
    from trestle_tasks.sync.ledger import GAVE_UP, STALE

    beat = heartbeat_interval(stale_s)
    deadline = time.monotonic() + stale_s + beat
    while True:
        verdict, row = ledger.claim(*ids, token, stale_s=stale_s, max_crashes=WINDOW_MAX_CRASHES)
        if verdict == GAVE_UP:
            log.error("window %s failed: its worker died %d times walking it", ids[2],
                      WINDOW_MAX_CRASHES)
        if verdict != WAIT:
            return verdict, row
        if time.monotonic() > deadline:
            log.warning("window %s is still beating elsewhere: this delivery is dropped",
                        ids[2])
            return STALE, row
        sleep(beat)


def heartbeat_interval(stale_s: float) -> float:
    """A running window beats four times within its staleness limit."""
    return stale_s / 4


def after_window(ledger: WindowLedger, run_plan: RunPlan, retry_in: float | None, *,
                 senders: Senders, hand_out_next: Callable[[], object]) -> None:
    """The last window of a run sends its finalize; every window hands out the next ones
    (a retried one when its delay is over). Best effort: the watchdog does all of it too."""
    try:
        if retry_in is not None:
            senders.hand_out_later(retry_in)
        if ledger.unfinished(run_plan.run_id, run_plan.resource) == 0:
            senders.finalize(run_plan.run_id, run_plan.resource)
        hand_out_next()
    except Exception as error:
        log.warning("could not hand out the next windows (the watchdog will): %s: %s",
                    type(error).__name__, error)


@dataclass
class WatchedRun:
    """What the watchdog did for one run the ledger drives."""

    requeued: list[Requeued] = field(default_factory=list)
    finalized: bool = False


def watch_run(ledger: WindowLedger, lock: RunLock, gate: Gate, run_id: str, resource: str, *,
              window_stale_s: float, lease_s: float, senders: Senders) -> WatchedRun:
    """Windows nobody works on handed out again (or given up), the run's lease renewed
    while windows wait, and its finalize sent once every window finished."""
    watched = WatchedRun(ledger.requeue_stale(
        run_id, resource, running_stale_s=window_stale_s,
        queued_stale_s=QUEUED_STALE_FACTOR * window_stale_s,
        max_crashes=WINDOW_MAX_CRASHES, max_retries=WINDOW_MAX_RETRIES))
    for change in watched.requeued:
        log.warning("watchdog: window %s", change)
        if change.gave_up:  # failed for good: free the slot it can no longer use
            release_slot(gate, slot_holder(run_id, resource, change.window_id))
    header = ledger.header(run_id, resource)
    if header is not None:  # windows waiting for slots (or a finalize) keep their run alive
        lock.renew(LockGrant(header["lock_name"], header["lock_owner"], header["fence"]),
                   lease_s)
    if ledger.unfinished(run_id, resource) == 0:
        senders.finalize(run_id, resource)
        watched.finalized = True
    return watched


def release_slot(gate: Gate, holder: str) -> None:
    try:
        gate.release(holder)
    except Exception as error:  # Redis down: the slot expires by itself
        log.warning("could not free the window's slot: %s: %s", type(error).__name__, error)


@dataclass(frozen=True)
class Unplanned:
    """What the watchdog did with a run no ledger drives."""

    ALIVE = "alive"
    REPLANNED = "replanned"
    CLOSED = "closed"

    action: str
    closed: SyncRun | None = None


def watch_unplanned(sync_log: SyncLog, lock: RunLock, run: SyncRun, *, feed: str,
                    senders: Senders) -> Unplanned:
    """A run without a ledger, alive while its lease is renewed: re-planned (a Celery
    run's planner died) or closed (a reconcile or a local run whose process is gone)."""
    holder = lock.holder(lock_name(run.resource))
    if holder is not None and holder.owner == run.run_id:
        return Unplanned(Unplanned.ALIVE)  # its process renews the lease
    details = run.details or {}
    who = details.get("planner") or "its process"
    watched = details.get("watched")
    replans = int(details.get("replans", 0))
    if run.status == PLANNING and watched is not None and replans < MAX_REPLANS:
        if not sync_log.note_replan(run.run_id, run.resource, replans):
            return Unplanned(Unplanned.ALIVE)  # another watchdog re-planned it a moment ago
        senders.plan(run.resource, {
            "full": bool(details.get("full")), "run_id": run.run_id,
            "attempt": int(watched.get("attempt", 1)), "feed": watched.get("feed", feed)},
            None, None)
        log.warning("watchdog: run %s: its planner (%s) stopped renewing its lease; "
                    "planned again (%d of %d)", run.run_id, who, replans + 1, MAX_REPLANS)
        return Unplanned(Unplanned.REPLANNED)
    if run.status == PLANNING and watched is not None:
        status = FAILED
        error = (f"its planner died {replans + 1} times (the last: {who}): not planned "
                 "again (out of memory? see CELERY_WORKER_MAX_MEMORY_MB)")
    else:
        status = ABANDONED
        error = f"{who} stopped: its lease lapsed while the run was {run.status}"
    closed = sync_log.close_run(run.run_id, run.resource, status=status, error=error)
    log.warning("watchdog: run %s closed %s: %s", run.run_id, status, error)
    return Unplanned(Unplanned.CLOSED, closed)


class RunRetry:
    """A whole-run retry decided while the run is closed, and written with it (its run id,
    task id and due time), so `sync --wait` can follow the run into its next attempt."""

    def __init__(self, plan: RunPlan, *, base_delay_s: float, senders: Senders) -> None:
        self.plan, self._base_delay_s, self._senders = plan, base_delay_s, senders
        self.nonce = uuid.uuid4().hex
        self.delay_s: float | None = None
        self.due: dict[str, Any] | None = None

    def details(self, status: str, outcomes: list[WindowOutcome]) -> dict[str, Any]:
        """More details to close the run with (finalize's `extra_details`)."""
        self.delay_s = run_retry_delay(self.plan, status, outcomes,
                                       base_delay_s=self._base_delay_s)
        extra: dict[str, Any] = {"closed_by": self.nonce}
        if (reason := no_progress_reason(outcomes)) is not None:
            extra["not_retried"] = reason
        if self.delay_s is not None:
            due_at = datetime.now(UTC) + timedelta(seconds=self.delay_s)
            self.due = {"run_id": new_run_id(), "task_id": uuid.uuid4().hex,
                        "due_at": due_at.isoformat(), "delay_s": round(self.delay_s, 1),
                        "attempt": self.plan.attempt + 1, "of": MAX_RUN_ATTEMPTS}
            extra["retry"] = self.due
        return extra

    def closed_here(self, run: SyncRun | None) -> bool:
        """Whether `run` was closed by the finalize this retry was decided in (finalize is
        sent more than once on purpose: only one call schedules and alerts)."""
        return run is not None and (run.details or {}).get("closed_by") == self.nonce

    def schedule(self) -> None:
        if self.due is None:
            return
        plan = self.plan
        self._senders.plan(plan.resource, {"full": plan.full, "attempt": plan.attempt + 1,
                                           "run_id": self.due["run_id"], "feed": plan.feed},
                           self.delay_s, self.due["task_id"])
        log.warning("run %s did not finish after transient failures; retried as a whole in "
                    "%.0f s as run %s (attempt %d of %d)", plan.run_id, self.delay_s,
                    self.due["run_id"], plan.attempt + 1, MAX_RUN_ATTEMPTS,
                    extra={"resource": plan.resource})
