"""Planning a run: fix its upper bound, then cut the range into windows for the cluster.

The range's records are counted and placed by a census of their timestamps (InKeyIndex
fields, 300,000 a request; see sync/window_cuts.py), so the windows are exact and cover the
whole range without gaps, which lets the watermark advance over a prefix of finished
windows. A small resource is planned without asking Trestle anything.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trestle_tasks.coordination.locks import LockGrant, LockKeeper, RunLock, lock_name
from trestle_tasks.core.errors import LockLostError
from trestle_tasks.core.timestamps import TICKS_PER_SECOND, ODataTimestamp
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import FAILED, INTERRUPTED, PLANNING
from trestle_tasks.sync.interrupt import INTERRUPTED_ERROR
from trestle_tasks.sync.model import RunPlan, Window
from trestle_tasks.sync.model import new_run_id as new_run_id  # planning names runs
from trestle_tasks.sync.phases import Phase
from trestle_tasks.sync.window_cuts import cut_windows, range_ticks
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import range_filter

if TYPE_CHECKING:  # the transaction's connection, handed in by the store
    import sqlalchemy as sa

log = logging.getLogger(__name__)

# A window holds at least this many pages (when the run has that many records): each
# window costs a task, a sync log row and a lock renewal whatever its size.
MIN_PAGES_PER_WINDOW = 3


@dataclass(frozen=True)
class WindowSizing:
    """How a run is cut: `wanted` windows (the cluster's window slots), each of at least
    `min_records` and at most `max_records` (SYNC_WINDOW_SIZE), each walked in up to
    `lanes` lanes (SYNC_WINDOW_LANES) cut to whole pages of `page_size`."""

    wanted: int = 1
    min_records: int = 1
    max_records: int = 20_000
    lanes: int = 1
    page_size: int = 1000

    @classmethod
    def for_cluster(cls, *, slots: int, page_size: int, max_records: int,
                    lanes: int = 1) -> WindowSizing:
        return cls(wanted=slots, min_records=min(max_records, MIN_PAGES_PER_WINDOW * page_size),
                   max_records=max_records, lanes=lanes, page_size=page_size)


def plan_windows(client: TrestleClient, resource: str, key_field: str, lower: int | None,
                 upper: int, sizing: WindowSizing) -> list[Window]:
    """Exact windows over (lower, upper] from a census of the range's timestamps."""
    ticks = range_ticks(client, resource, key_field, range_filter(lower, upper))
    return cut_windows(ticks, lower, upper, windows_wanted=sizing.wanted,
                       min_size=sizing.min_records, max_size=sizing.max_records,
                       lanes=sizing.lanes, page_size=sizing.page_size)


@dataclass(frozen=True)
class Skipped:
    """A trigger that found the resource's run lock held: it exits cleanly and says why."""

    resource: str
    reason: str
    run_id: str | None = None
    # The trigger was this same run again (a redelivered or repeated plan): nothing to
    # record, the run goes on without it.
    same_run: bool = False


def this_process(role: str) -> str:
    """Who plans a run, as its `planning` row names it (`status` shows it)."""
    return f"{role} on {socket.gethostname()} pid {os.getpid()}"


def record_skip(store: Store, skipped: Skipped) -> Skipped:
    """Write the skipped trigger to the sync log and say why in the log.

    Best effort: the trigger changes nothing, and the run holding the lock may not have
    created the bookkeeping tables yet on a brand-new database.
    """
    log.info("skipped: %s", skipped.reason,
             extra={"run_id": skipped.run_id, "resource": skipped.resource})
    if skipped.run_id is not None:
        try:
            store.sync_log.record_skipped(skipped.run_id, skipped.resource, skipped.reason)
        except Exception as error:  # a skip must still exit cleanly
            log.warning("could not record the skipped trigger: %s", type(error).__name__,
                        extra={"resource": skipped.resource})
    return skipped


def is_small(store: Store, resource: str, max_window: int) -> bool:
    """Everything stored fits in half a window, so even a change to every record (a
    provider-wide remap) keeps one window's walk short."""
    return store.count(resource, include_deleted=True, at_most=max_window) <= \
        max_window // 2


# Writes the caller adds to the transaction that records the plan (the Celery layer's
# window ledger), so a plan is either wholly recorded or not at all.
RecordPlan = Callable[["sa.Connection", RunPlan], None]


def plan_run(
    resource: str,
    *,
    store: Store,
    client: TrestleClient,
    lock: RunLock,
    lock_ttl_s: float,
    sizing: WindowSizing,
    full: bool = False,
    run_id: str | None = None,
    now: Callable[[], ODataTimestamp] = ODataTimestamp.now,
    settle_s: float = 0.0,
    prepare: Callable[[], None] | None = None,
    planner: str = "",
    record: RecordPlan | None = None,
    watched: Mapping[str, Any] | None = None,
    take_over: bool = False,
    defer_indexes: bool | None = False,
) -> RunPlan | Skipped:
    """Take the lock, open the run's row as `planning`, fix the upper bound, cut the
    windows and record the plan (the row becomes `running`).

    The row exists before the first request, naming its `planner`, and the lock's lease is
    renewed while planning goes on: a planner that dies is seen (its lease lapses) and
    replaced under the same run id by the watchdog, which calls this again. `prepare` runs
    once the lock is held (creating missing tables, so that two triggers never migrate at
    once). A failed plan closes its row `failed` with the reason (`interrupted` on Ctrl-C)
    and releases the lock at once: a planning error must not block the next trigger.
    `watched` (the Celery layer's attempt and feed) marks a run the watchdog re-plans
    should its planner die; a run without it (`sync --local`) is closed instead.
    `take_over`: this delivery knows the one before it died (RabbitMQ hands a dead
    worker's message back at once): it plans under the run's live lease instead of
    waiting for it to lapse. Should that one live after all, both plan under one grant and
    only the first plan is recorded. `defer_indexes`: a first load into an empty table
    drops its secondary indexes, and its finalize builds them (store/indexes.py); None:
    only for a resource of wide records (`defers_indexes`).
    """
    run_id = run_id or new_run_id()
    store.check_owner()  # another feed's schema: refused before its lock or log is touched
    name = lock_name(resource)
    holder = lock.holder(name)
    if holder is not None and holder.owner == run_id and not take_over:
        # A second delivery of this run's plan while the first still renews its lease (an
        # acquire would hand it the same grant: the owner is the run).
        return Skipped(resource, f"run {run_id} holds its lock already: planned or being "
                                 "planned by another delivery", run_id, same_run=True)
    grant = lock.acquire(name, owner=run_id, ttl_s=lock_ttl_s)
    if grant is None:
        grant = _after_a_poll(lock, name, run_id, lock_ttl_s)
    if grant is None:
        holder = lock.holder(name)
        # The lease's end tells a live holder (renewed before then) from a dead one.
        held_by = (f"run {holder.owner} (its lease ends in {holder.ttl_s or 0:.0f} s unless "
                   "renewed)" if holder else "another run")
        return record_skip(store, Skipped(resource, f"{resource} is already being synced by "
                                                    f"{held_by}", run_id))
    context = {"run_id": run_id, "resource": resource}
    phase = Phase(log, "plan", stats=client.stats, context=context).start(
        "planning run %s (%s)", run_id, "full" if full else "incremental", full=full,
        planner=planner)
    try:
        row = store.sync_log.begin_planning(run_id, resource, {
            "phase": PLANNING, "planner": planner, "fence": grant.fence, "full": full,
            **({"watched": dict(watched)} if watched is not None else {})})
        if row.status != PLANNING:  # planned or closed a moment ago: not ours to plan
            if (row.details or {}).get("fence") != grant.fence:
                lock.release(grant)  # not the grant the run goes on with
            phase.end("run %s is %s already: not planned again", run_id, row.status,
                      figures=phase.figures(), outcome="skipped")
            return Skipped(resource, f"run {run_id} is {row.status} already", run_id,
                           same_run=True)
        with LockKeeper(lock, grant, lock_ttl_s) as keeper:
            plan = _plan(resource, store=store, client=client, grant=grant, sizing=sizing,
                         full=full, run_id=run_id, now=now, settle_s=settle_s,
                         prepare=prepare, phase=phase, defer_indexes=defer_indexes)
            keeper.ensure_held()  # a planner replaced while it was slow records nothing
            _record(store, plan, record)
    except LockLostError as error:
        # Another delivery of this run plans it now: its row is that one's to close.
        phase.end("planning run %s stopped: %s", run_id, error, figures=phase.figures(),
                  outcome="superseded")
        raise
    except BaseException as error:
        lock.release(grant)
        interrupted = isinstance(error, KeyboardInterrupt)
        with suppress(Exception):  # the database may be what failed; the watchdog will see
            store.sync_log.close_run(
                run_id, resource, status=INTERRUPTED if interrupted else FAILED,
                error=INTERRUPTED_ERROR if interrupted else f"planning failed: {_reason(error)}")
        phase.end("planning run %s failed: %s", run_id, _reason(error),
                  figures=phase.figures(), outcome="failed")
        raise
    figures = phase.figures()
    store.sync_log.add_counts(run_id, resource, api_requests=figures.requests,
                             retries=figures.retries, rate_limited=figures.rate_limited,
                             api_bytes=figures.api_bytes)
    expected = sum(w.expected or 0 for w in plan.windows)
    phase.end("run %s planned: %d window(s), about %d records", run_id, len(plan.windows),
              expected, figures=figures, outcome="planned",
              windows=len(plan.windows), expected_records=expected)
    return plan



# A poll holds its resource for a request or three; a run turned away by one would be
# refused for nothing (a manual `sync --full` exiting 3 while polling is on).
POLL_HOLD_WAIT_S = 30.0


def _after_a_poll(lock: RunLock, name: str, run_id: str, ttl_s: float,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> LockGrant | None:
    """The lock once the poll holding it lets go (None: a run holds it, or the poll
    outlasted POLL_HOLD_WAIT_S)."""
    deadline = clock() + POLL_HOLD_WAIT_S
    while clock() < deadline:
        holder = lock.holder(name)
        if holder is not None and not holder.is_poll:
            return None
        grant = lock.acquire(name, owner=run_id, ttl_s=ttl_s)
        if grant is not None:
            return grant
        sleep(0.2)
    return None

def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _plan(resource: str, *, store: Store, client: TrestleClient, grant: LockGrant,
          sizing: WindowSizing, full: bool, run_id: str, now: Callable[[], ODataTimestamp],
          settle_s: float, prepare: Callable[[], None] | None, phase: Phase,
          defer_indexes: bool | None = False) -> RunPlan:
    if prepare is not None:
        prepare()
    layout = layout_of(store.engine, resource, store.schema)
    key_field = layout.key_field.name
    deferred, notes = _prepare_indexes(store, resource, defers_indexes(
        defer_indexes, len(layout.spec.fields)))
    # The newest `settle_s` seconds are left to the next run: a record stamped by a
    # server whose clock runs behind ours, or committed late, would otherwise land
    # below a watermark that has already moved past it.
    upper = now().ticks - int(settle_s * TICKS_PER_SECOND)
    mark = None if full else store.sync_log.read_watermark(resource)
    lower = mark.ticks if mark is not None else None
    phase.count_from_here()
    if lower is not None and is_small(store, resource, sizing.max_records):
        # A census would cost a request to learn what the one window's first page
        # tells anyway: a small resource is walked whole, with no planning request.
        windows = [Window(0, lower, upper, None)]
        notes += ("small resource: one window, planned without a census",)
    else:
        windows = plan_windows(client, resource, key_field, lower, upper, sizing)
    return RunPlan(
        run_id=run_id, resource=resource, key_field=key_field, lower_ticks=lower,
        upper_ticks=upper, windows=tuple(windows), lock_name=grant.name,
        lock_owner=grant.owner, fence=grant.fence,
        planning_requests=phase.figures().requests, full=full, notes=notes,
        deferred_indexes=tuple(deferred),
    )


# STORE_DEFER_INDEXES=auto defers a first load's secondary indexes for resources declaring
# at least this many fields. Measured on MariaDB (python -m bench.backfill --records 100000
# --compare-defer, 2 workers x 2): at 588 fields a record's document (~11 KB without its
# nulls) is kept off the row, the build at the end reads a small table, and the load took
# 30.1 s deferred against 34.8 s kept; at 122 fields the 4.6 KB documents stay in the row,
# the build reads the whole 600 MB table after the last window, and it took 29.8 s against
# 25.9 s. Trestle's Property declares 602 fields; its other resources, tens.
WIDE_RECORD_FIELDS = 400


def defers_indexes(setting: bool | None, declared_fields: int) -> bool:
    """Whether a first load defers its secondary indexes: as set, or (None, auto) for
    records of at least WIDE_RECORD_FIELDS declared fields."""
    return declared_fields >= WIDE_RECORD_FIELDS if setting is None else setting


def _prepare_indexes(store: Store, resource: str, defer: bool) -> tuple[list[str], tuple[str, ...]]:
    """A first load into an empty table drops the secondary indexes (its finalize builds
    them); any other run first builds the ones a first load that died left missing.
    Returns the indexes deferred and the plan's note about them."""
    if defer and store.is_empty(resource):
        deferred = store.defer_indexes(resource)
        if deferred:
            log.info("%s: first load into an empty table; its %d secondary index(es) are "
                     "built when the run ends", resource, len(deferred),
                     extra={"resource": resource, "indexes": deferred})
            return deferred, (f"first load: {len(deferred)} secondary index(es) built at "
                              "the end",)
        return [], ()
    built = store.build_missing_indexes(resource)
    if built:
        log.warning("%s: built %d secondary index(es) missing since a first load that did "
                    "not finish: %s", resource, len(built), ", ".join(built),
                    extra={"resource": resource, "indexes": built})
        return [], (f"built {len(built)} secondary index(es) a first load left missing",)
    return [], ()


def _record(store: Store, plan: RunPlan, record: RecordPlan | None) -> None:
    """The plan, in one transaction: the row `running` with its figures, and whatever the
    caller keeps beside it (idempotent, so a retried transaction that had in fact
    committed finds its own plan and adds nothing)."""
    sync_log = store.sync_log
    lower = plan.lower_ticks

    def work(conn: sa.Connection) -> None:
        moved = sync_log.mark_planned(
            conn, plan.run_id, plan.resource, windows_total=len(plan.windows),
            watermark_from=ODataTimestamp(lower).to_odata() if lower is not None else None,
            watermark_to=ODataTimestamp(plan.upper_ticks).to_odata(),
            details={"expected_records": sum(w.expected or 0 for w in plan.windows),
                     "fence": plan.fence, "full": plan.full})
        if not moved:
            if sync_log.planned_with_fence(conn, plan.run_id, plan.resource) != plan.fence:
                raise LockLostError(f"run {plan.run_id} is no longer being planned here")
            return  # recorded already, with all the rest of this transaction
        if record is not None:
            record(conn, plan)

    sync_log.in_transaction(work)
