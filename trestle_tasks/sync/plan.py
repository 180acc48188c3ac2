"""Planning a run: fix its upper bound, then cut the range into windows for the cluster.

The range's records are counted and placed by a census of their timestamps (InKeyIndex
fields, 300,000 a request; see sync/windows.py), so the windows are exact and cover the
whole range without gaps, which lets the watermark advance over a prefix of finished
windows. A small resource is planned without asking Trestle anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from trestle_tasks.coordination.locks import RunLock, lock_name
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.store import Store
from trestle_tasks.sync.model import RunPlan, Window
from trestle_tasks.sync.model import new_run_id as new_run_id  # planning names runs
from trestle_tasks.sync.phases import Phase
from trestle_tasks.sync.windows import cut_windows, range_ticks
from trestle_tasks.timestamps import TICKS_PER_SECOND, ODataTimestamp
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import range_filter

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


def plan_run(
    resource: str,
    *,
    store: Store,
    client: TrestleClient,
    lock: RunLock,
    owner: str,
    lock_ttl_s: float,
    sizing: WindowSizing,
    full: bool = False,
    run_id: str | None = None,
    now: Callable[[], ODataTimestamp] = ODataTimestamp.now,
    settle_s: float = 0.0,
    prepare: Callable[[], None] | None = None,
) -> RunPlan | Skipped:
    """Take the lock, fix the upper bound, cut the windows and open the run's sync-log row.

    `prepare` runs once the lock is held (creating missing tables, so that two triggers
    never migrate at once). On any failure after the lock was taken, the lock is released
    again: a planning error must not block the next trigger for a whole TTL.
    """
    run_id = run_id or new_run_id()
    name = lock_name(resource)
    grant = lock.acquire(name, owner=run_id, ttl_s=lock_ttl_s)
    if grant is None:
        holder = lock.holder(name)
        held_by = f"run {holder.owner}" if holder else "another run"
        return record_skip(store, Skipped(resource, f"{resource} is already being synced by "
                                                    f"{held_by}", run_id))
    context = {"run_id": run_id, "resource": resource}
    phase = Phase(log, "plan", stats=client.stats, context=context).start(
        "planning run %s (%s)", run_id, "full" if full else "incremental", full=full)
    try:
        if prepare is not None:
            prepare()
        key_field = layout_of(store.engine, resource, store.schema).key_field.name
        # The newest `settle_s` seconds are left to the next run: a record stamped by a
        # server whose clock runs behind ours, or committed late, would otherwise land
        # below a watermark that has already moved past it.
        upper = now().ticks - int(settle_s * TICKS_PER_SECOND)
        mark = None if full else store.sync_log.read_watermark(resource)
        lower = mark.ticks if mark is not None else None
        phase.count_from_here()
        notes: tuple[str, ...] = ()
        if lower is not None and is_small(store, resource, sizing.max_records):
            # A census would cost a request to learn what the one window's first page
            # tells anyway: a small resource is walked whole, with no planning request.
            windows = [Window(0, lower, upper, None)]
            notes = ("small resource: one window, planned without a census",)
        else:
            windows = plan_windows(client, resource, key_field, lower, upper, sizing)
        figures = phase.figures()
        plan = RunPlan(
            run_id=run_id, resource=resource, key_field=key_field, lower_ticks=lower,
            upper_ticks=upper, windows=tuple(windows), lock_name=name, lock_owner=run_id,
            fence=grant.fence, planning_requests=figures.requests, full=full, notes=notes,
        )
        store.sync_log.open_run(
            run_id, resource, windows_total=len(windows),
            watermark_from=mark.text if mark is not None else None,
            watermark_to=ODataTimestamp(upper).to_odata(),
            details={"expected_records": sum(w.expected or 0 for w in windows),
                     "fence": grant.fence, "full": full},
        )
        store.sync_log.add_counts(run_id, resource, api_requests=figures.requests,
                                 retries=figures.retries, rate_limited=figures.rate_limited,
                                 api_bytes=figures.api_bytes)
    except BaseException as error:
        lock.release(grant)
        phase.end("planning run %s failed: %s", run_id, error or type(error).__name__,
                  figures=phase.figures(), outcome="failed")
        raise
    expected = sum(w.expected or 0 for w in windows)
    phase.end("run %s planned: %d window(s), about %d records", run_id, len(windows),
              expected, figures=figures, outcome="planned", windows=len(windows),
              expected_records=expected)
    return plan
