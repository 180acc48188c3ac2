"""Cutting a run's range into windows from a census of the range's timestamps.

One census request (InKeyIndex fields only, 300,000 records a request) tells the
timestamp of every record in (lower, upper], so the windows' boundaries are exact, in a
few round trips whatever the size, instead of a `$count` per bisection level.

How many windows: enough to keep every window slot of the cluster busy
(`SYNC_MAX_CONCURRENT_WINDOWS`), but none smaller than a few pages (a window's walk has a
fixed cost: a task, a lock renewal, a sync log row) and none larger than
`SYNC_WINDOW_SIZE`. A timestamp shared by more records than a window is never split: the
window's keyset walk takes the whole tie.

Lanes: a window of several pages is also cut, at census timestamps, into up to
`SYNC_WINDOW_LANES` stretches that its task walks at once, one request each in flight. A
keyset walk cannot ask for its next page before the last one arrived, so a window of n
pages costs n round trips of latency walked alone and about n / lanes in lanes. It costs at
most lanes - 1 more requests, and at most one where no tie moves a cut (see `cut_lanes`).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence

from trestle_tasks.sync.model import Window
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import census_versions
from trestle_tasks.trestle.query import Expr


def window_size(records: int, *, windows_wanted: int, min_size: int, max_size: int) -> int:
    """Records per window: `records` spread over `windows_wanted`, within the bounds.

    When even that many windows would be too large, the run takes whole rounds of
    `windows_wanted` windows: 100,000 records on 4 slots at most 20,000 a window are 8
    windows of 12,500 (two full rounds), not 5 of 20,000 (a second round of one window,
    with three slots idle)."""
    slots = max(1, windows_wanted)
    wanted = math.ceil(records / slots)
    if wanted > max_size:
        rounds = math.ceil(records / (max_size * slots))
        wanted = math.ceil(records / (rounds * slots))
    return max(1, min(max_size, max(min_size, wanted)))


def cut_windows(ticks: Sequence[int], lower: int | None, upper: int, *,
                windows_wanted: int, min_size: int, max_size: int, lanes: int = 1,
                page_size: int = 1000) -> list[Window]:
    """Windows covering (lower, upper] with no gap or overlap, from the sorted timestamps
    of the records in it; each holds `window_size` records, or more for a tie, and is cut
    into at most `lanes` lanes walked at once (see `cut_lanes`)."""
    if not ticks:
        return []
    size = window_size(len(ticks), windows_wanted=windows_wanted, min_size=min_size,
                       max_size=max_size)
    windows: list[Window] = []
    start, window_lower = 0, lower
    while start < len(ticks):
        last = min(start + size, len(ticks)) - 1
        last = bisect.bisect_right(ticks, ticks[last]) - 1  # the whole tie, never half
        window_upper = ticks[last] if last < len(ticks) - 1 else upper
        inner = cut_lanes(ticks, start, last + 1, lanes=lanes, page_size=page_size)
        windows.append(Window(len(windows), window_lower, window_upper, last + 1 - start,
                              lanes=inner))
        start, window_lower = last + 1, window_upper
    return windows


def cut_lanes(ticks: Sequence[int], start: int, end: int, *, lanes: int,
              page_size: int) -> tuple[int, ...]:
    """The inner boundaries of a window holding ticks[start:end]: strictly increasing
    timestamps, each the last of a lane (a lane is (previous boundary, boundary]).

    Every lane but the last is cut one record short of a whole number of pages: a keyset
    walk asks once more after a full last page (Trestle links every full page), so a lane
    of exactly 1,000 would cost two requests where 999 costs one. Without ties moving the
    cuts, the lanes then cost together at most one request more than the window walked
    alone (when the page size is larger than `lanes`), and wait for about a `lanes`-th of
    its round trips. No lanes when the window fits one page.

    A tie stays in one lane: a cut that falls inside a run of equal timestamps moves to
    just before it (so the lane stays within its pages), or, when that would empty the
    lane, to its end. Dropping the cut instead would leave a neighbour walking two lanes'
    pages one after another, the slowest stretch of the whole run (a mass update stamps
    thousands of records alike).
    """
    count = end - start
    wanted = min(lanes, count // page_size + 1)
    if wanted < 2:
        return ()
    per_lane = max(1, math.ceil(math.ceil(count / wanted) / page_size) * page_size - 1)
    last = end - 1
    cuts: list[int] = []  # index of each lane's last record
    for lane in range(1, wanted):
        cut = start + lane * per_lane - 1
        if cut >= last:
            break
        if ticks[cut] == ticks[cut + 1]:
            before = bisect.bisect_left(ticks, ticks[cut], start, end) - 1
            after = bisect.bisect_right(ticks, ticks[cut], start, end) - 1
            cut = before if before > (cuts[-1] if cuts else start - 1) else after
        if cut >= last:
            break  # the tie runs to the window's end: the last lane takes it
        if not cuts or cut > cuts[-1]:
            cuts.append(cut)
    return tuple(ticks[cut] for cut in cuts)


def range_ticks(client: TrestleClient, resource: str, key_field: str,
                within: Expr | None) -> array[int]:
    """The sorted ModificationTimestamps of every record matching `within` (one request per
    300,000 records; 8 bytes a record kept)."""
    ticks: array[int] = array("q")
    for page in census_versions(client, resource, key_field, within=within):
        ticks.extend(t for _, t in page if t is not None)
    return array("q", sorted(ticks))
