"""Choosing how to fetch the records a reconcile must repair (pure): by key, or by range.

Fetching by key costs a request per ~45 keys (the URL bound); walking a timestamp range
costs a request per 1,000 records of the feed in it, wanted or not. The census tells both:
every wanted record's timestamp, and how many feed records any range holds. When the
records to repair are dense in some stretch of time (a store restored from an old backup,
a partly failed backfill, an office joining with thousands of listings), walking that
stretch is far cheaper than naming every key; scattered ones are fetched by key.

The plan cuts the feed's census, in timestamp order, into the pages a walk would read
(1,000 records each). A page holding at least one key batch's worth of wanted records
costs no more walked than named, so it is walked; consecutive such pages make one range
walk. Wanted records anywhere else are fetched by key.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

PAGE = 1000


@dataclass(frozen=True)
class RangeWalk:
    """Feed records with lower < ModificationTimestamp <= upper (ticks), of which `keys`
    are wanted."""

    lower: int
    upper: int
    keys: tuple[Any, ...]
    feed_records: int

    @property
    def requests(self) -> int:
        # A full last page is followed by an empty one on Trestle: count it.
        return self.feed_records // PAGE + 1


@dataclass
class RepairPlan:
    by_key: list[Any] = field(default_factory=list)
    ranges: list[RangeWalk] = field(default_factory=list)

    def requests(self, keys_per_request: int) -> int:
        return (math.ceil(len(self.by_key) / keys_per_request)
                + sum(r.requests for r in self.ranges))


def in_range(feed_ticks: Sequence[int], lower: int, upper: int) -> int:
    """Feed records with lower < ticks <= upper (`feed_ticks` sorted)."""
    return bisect.bisect_right(feed_ticks, upper) - bisect.bisect_right(feed_ticks, lower)


class FeedTimeline(Protocol):
    """The census's timestamps in order, cut into the pages a walk would read: what the
    plan needs of the census, without holding all of it (PageBoundaries)."""

    def page_of(self, ticks: int) -> int:
        """The page where the records of timestamp `ticks` (one of the feed's) begin."""

    def bounds(self, first: int, last: int) -> tuple[int, int]:
        """(lower, upper] timestamps of pages first..last: the last timestamp before the
        first page (the first one less one tick on page 0), and the last of page `last`."""

    def count_between(self, lower: int, upper: int) -> int:
        """Feed records with lower < ticks <= upper."""


class SortedTicks:
    """Every timestamp of the census, sorted, in memory (8 bytes a record)."""

    def __init__(self, ticks: Sequence[int], page: int = PAGE) -> None:
        self.ticks, self.page = ticks, page

    def page_of(self, ticks: int) -> int:
        return bisect.bisect_left(self.ticks, ticks) // self.page

    def bounds(self, first: int, last: int) -> tuple[int, int]:
        ticks = self.ticks
        lower = ticks[first * self.page - 1] if first else ticks[0] - 1
        return lower, ticks[min((last + 1) * self.page, len(ticks)) - 1]

    def count_between(self, lower: int, upper: int) -> int:
        return in_range(self.ticks, lower, upper)


class PageBoundaries:
    """The first and last timestamp of each page, read from the sorted timestamps in one
    pass (16 bytes a page of 1,000 records); counts asked of `count_between`, which the
    census spill answers from its index."""

    def __init__(self, sorted_ticks: Iterable[int], count_between: Callable[[int, int], int],
                 page: int = PAGE) -> None:
        self.page = page
        self.starts: array[int] = array("q")
        self.ends: array[int] = array("q")
        last = 0
        for index, ticks in enumerate(sorted_ticks):
            if index % page == 0:
                self.starts.append(ticks)
            if index % page == page - 1:
                self.ends.append(ticks)
            last = ticks
        if len(self.ends) < len(self.starts):
            self.ends.append(last)  # the last page, not full
        self._count = count_between

    def page_of(self, ticks: int) -> int:
        later = bisect.bisect_left(self.starts, ticks)  # pages that begin before `ticks`
        # A page beginning with `ticks` is where its records begin, unless the page before
        # ends with it too (a tie across the boundary begins on the page before).
        if (later < len(self.starts) and self.starts[later] == ticks
                and (later == 0 or self.ends[later - 1] < ticks)):
            return later
        return max(later - 1, 0)

    def bounds(self, first: int, last: int) -> tuple[int, int]:
        lower = self.ends[first - 1] if first else self.starts[0] - 1
        return lower, self.ends[last]

    def count_between(self, lower: int, upper: int) -> int:
        return self._count(lower, upper)


def plan_repair(wanted: Sequence[tuple[Any, int | None]],
                feed: Sequence[int] | FeedTimeline, *,
                keys_per_request: int) -> RepairPlan:
    """Split `wanted` (key, feed timestamp) into range walks and keys to fetch by name.

    `feed` is every timestamp of the census, sorted, or a FeedTimeline of them. Every
    wanted key lands in exactly one place: a range whose (lower, upper] holds its
    timestamp, or `by_key`.
    """
    timeline: FeedTimeline = SortedTicks(feed) if isinstance(feed, Sequence) else feed
    plan = RepairPlan()
    plan.by_key.extend(key for key, ticks in wanted if ticks is None)
    pages: dict[int, list[tuple[int, Any]]] = {}
    for key, ticks in wanted:
        if ticks is not None:
            # A tie across a page boundary belongs to the page where it begins, whose
            # (lower, upper] timestamp range holds all of it.
            pages.setdefault(timeline.page_of(ticks), []).append((ticks, key))
    dense = sorted(page for page, found in pages.items() if len(found) >= keys_per_request)
    for page, found in sorted(pages.items()):
        if page not in dense:
            plan.by_key.extend(key for _, key in sorted(found))
    run: list[int] = []
    for next_page in [*dense, None]:  # None: past the last page, to close the last run
        if run and (next_page is None or next_page != run[-1] + 1):
            walk = _walk(run, pages, timeline)
            # A tie running far past the last page makes the walk long: name them instead.
            if walk.requests <= math.ceil(len(walk.keys) / keys_per_request) + 1:
                plan.ranges.append(walk)
            else:
                plan.by_key.extend(walk.keys)
            run = []
        if next_page is not None:
            run.append(next_page)
    return plan


def _walk(run: list[int], pages: dict[int, list[tuple[int, Any]]],
          timeline: FeedTimeline) -> RangeWalk:
    lower, upper = timeline.bounds(run[0], run[-1])
    keys = tuple(key for page in run for _, key in sorted(pages[page]))
    return RangeWalk(lower, upper, keys, timeline.count_between(lower, upper))


def keys_per_request(key_field: str, keys: Sequence[Any], max_query_chars: int) -> int:
    """About how many `key eq '…'` terms fit in one URL (percent-encoded spaces)."""
    if not keys:
        return 1
    average = sum(len(str(k)) for k in keys) / len(keys)
    term = len(key_field) + len("%20eq%20''%20or%20") + average
    # The rest of the query ($orderby, $top, maybe $expand) takes about 100 characters.
    return max(1, int((max_query_chars - 100) // term))
