"""Planning a run: fix its upper bound, then cut the range into windows of a target size.

Sizes come from `$count` on key-only queries. A range holding more than the target is
halved in time until each part fits or cannot be split (one timestamp shared by many
records: keyset paging walks such a tie whole). Parts are then merged back while they fit,
so the windows cover the whole range without gaps, which lets the watermark advance over a
prefix of finished windows.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from trestle_tasks.coordination.locks import RunLock
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.store import Store
from trestle_tasks.sync.model import RunPlan, Window
from trestle_tasks.sync.phases import Phase
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.query import ODataQuery, all_of, gt, le
from trestle_tasks.trestle.timestamps import TICKS_PER_SECOND, ODataTimestamp

log = logging.getLogger(__name__)

TIMESTAMP_FIELD = "ModificationTimestamp"
# Key-only $count requests in flight at once while planning (they still pass the limiter).
PLANNING_PARALLEL_COUNTS = 8

# count(lower_ticks_exclusive_or_None, upper_ticks_inclusive) -> records in that range
RangeCounter = Callable[[int | None, int], int]


def range_filter(lower_ticks: int | None, upper_ticks: int):
    return all_of(
        gt(TIMESTAMP_FIELD, ODataTimestamp(lower_ticks)) if lower_ticks is not None else None,
        le(TIMESTAMP_FIELD, ODataTimestamp(upper_ticks)),
    )


def odata_range_counter(client: TrestleClient, resource: str, key_field: str) -> RangeCounter:
    def count(lower_ticks: int | None, upper_ticks: int) -> int:
        query = ODataQuery(resource, filter=range_filter(lower_ticks, upper_ticks),
                           select=(key_field,))
        return client.get_count(query)

    return count


def earliest_ticks(client: TrestleClient, resource: str, key_field: str) -> int | None:
    """The oldest ModificationTimestamp in the feed (None when the feed is empty)."""
    page = client.get_page(ODataQuery(resource, select=(key_field, TIMESTAMP_FIELD),
                                      orderby=((TIMESTAMP_FIELD, False),), top=1))
    if not page.records or page.records[0].get(TIMESTAMP_FIELD) is None:
        return None
    return ODataTimestamp.parse(page.records[0][TIMESTAMP_FIELD]).ticks


def split_range(
    count: RangeCounter,
    lower_ticks: int | None,
    upper_ticks: int,
    target: int,
    *,
    earliest: Callable[[], int | None] = lambda: None,
    max_windows: int = 10_000,
    parallel: int = 1,
) -> list[Window]:
    """Windows covering (lower, upper], each holding about `target` records or fewer.

    None at all when the range is empty. The halves of one level of the bisection are
    counted `parallel` at a time: each count costs a round trip, and a backfill of a
    million records needs several levels of them before any window can start.
    """
    if target < 1:
        raise ValueError("the target window size must be at least 1")
    total = count(lower_ticks, upper_ticks)
    if total == 0:
        return []  # nothing changed: the run costs its planning request and nothing more
    if total <= target:
        return [Window(0, lower_ticks, upper_ticks, total)]
    start = lower_ticks
    if start is None:
        first = earliest()
        # Everything at or before `first - 1` is empty: begin the bisection there.
        start = None if first is None else first - 1
    parts: list[tuple[int | None, int, int]] = []
    level = [(start, upper_ticks, total)]
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        while level:
            to_split = []
            for lo, hi, n in level:
                splittable = lo is not None and hi - lo > 1
                if (n <= target or not splittable
                        or len(parts) + len(level) + len(to_split) >= max_windows):
                    parts.append((lo, hi, n))
                else:
                    to_split.append((lo, lo + (hi - lo) // 2, hi, n))  # type: ignore[operator]
            # Each count runs in a copy of this thread's context, so its request lines
            # carry the run's log context (run id, resource) like every other line.
            lefts = [future.result() for future in [
                pool.submit(contextvars.copy_context().run, count, lo, mid)
                for lo, mid, _hi, _n in to_split]]
            # Counts of the halves add up (changes during planning only move records past
            # `upper`), so the right half costs no request.
            level = [half for (lo, mid, hi, n), left in zip(to_split, lefts, strict=True)
                     for half in ((lo, mid, left), (mid, hi, max(n - left, 0)))]
    parts.sort(key=lambda p: (p[0] is not None, p[0] or 0))
    if parts and lower_ticks is None:
        parts[0] = (None, parts[0][1], parts[0][2])  # a full load starts at the beginning
    merged: list[tuple[int | None, int, int]] = []
    for lo, hi, n in parts:
        if merged and merged[-1][2] + n <= target:
            prev_lo, _, prev_n = merged[-1]
            merged[-1] = (prev_lo, hi, prev_n + n)
        else:
            merged.append((lo, hi, n))
    return [Window(i, lo, hi, n) for i, (lo, hi, n) in enumerate(merged)]


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
            store.journal.record_skipped(skipped.run_id, skipped.resource, skipped.reason)
        except Exception as error:  # a skip must still exit cleanly
            log.warning("could not record the skipped trigger: %s", type(error).__name__,
                        extra={"resource": skipped.resource})
    return skipped


def is_small(store: Store, resource: str, target_window: int) -> bool:
    """Everything stored fits in half a window, so even a change to every record (a
    provider-wide remap) keeps one window's walk short."""
    return store.count(resource, include_deleted=True, at_most=target_window) <= \
        target_window // 2


def lock_name(resource: str) -> str:
    """The run lock of `resource`: one per resource and database, whatever the credential
    or mode, since two runs of one resource into one database must never overlap. The name
    is the resource itself, so the lock can read the fence stored with its watermark."""
    return resource


def plan_run(
    resource: str,
    *,
    store: Store,
    client: TrestleClient,
    lock: RunLock,
    owner: str,
    lock_ttl_s: float,
    target_window: int,
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
        mark = None if full else store.journal.read_watermark(resource)
        lower = mark.ticks if mark is not None else None
        phase.count_from_here()
        notes: tuple[str, ...] = ()
        if lower is not None and is_small(store, resource, target_window):
            # Counting would cost a request to learn what the one window's first page
            # tells anyway: a small resource is walked whole, with no planning request.
            windows = [Window(0, lower, upper, None)]
            notes = ("small resource: one window, planned without $count",)
        else:
            windows = split_range(
                odata_range_counter(client, resource, key_field), lower, upper,
                target_window, earliest=lambda: earliest_ticks(client, resource, key_field),
                parallel=PLANNING_PARALLEL_COUNTS,
            )
        figures = phase.figures()
        plan = RunPlan(
            run_id=run_id, resource=resource, key_field=key_field, lower_ticks=lower,
            upper_ticks=upper, windows=tuple(windows), lock_name=name, lock_owner=run_id,
            fence=grant.fence, planning_requests=figures.requests, full=full, notes=notes,
        )
        store.journal.open_run(
            run_id, resource, windows_total=len(windows),
            watermark_from=mark.text if mark is not None else None,
            watermark_to=ODataTimestamp(upper).to_odata(),
            details={"expected_records": sum(w.expected or 0 for w in windows),
                     "fence": grant.fence, "full": full},
        )
        store.journal.add_counts(run_id, resource, api_requests=figures.requests,
                                 retries=figures.retries, rate_limited=figures.rate_limited,
                                 bytes_received=figures.bytes_received)
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


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{ODataTimestamp.now().to_datetime():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
