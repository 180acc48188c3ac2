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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


def plan_repair(wanted: Sequence[tuple[Any, int | None]], feed_ticks: Sequence[int], *,
                keys_per_request: int) -> RepairPlan:
    """Split `wanted` (key, feed timestamp) into range walks and keys to fetch by name.

    `feed_ticks` is every timestamp of the census, sorted. Every wanted key lands in
    exactly one place: a range whose (lower, upper] holds its timestamp, or `by_key`.
    """
    plan = RepairPlan()
    plan.by_key.extend(key for key, ticks in wanted if ticks is None)
    pages: dict[int, list[tuple[int, Any]]] = {}
    for key, ticks in wanted:
        if ticks is not None:
            # A tie across a page boundary belongs to the page where it begins, whose
            # (lower, upper] timestamp range holds all of it.
            page = bisect.bisect_left(feed_ticks, ticks) // PAGE
            pages.setdefault(page, []).append((ticks, key))
    dense = sorted(page for page, found in pages.items() if len(found) >= keys_per_request)
    for page, found in sorted(pages.items()):
        if page not in dense:
            plan.by_key.extend(key for _, key in sorted(found))
    run: list[int] = []
    for next_page in [*dense, None]:  # None: past the last page, to close the last run
        if run and (next_page is None or next_page != run[-1] + 1):
            walk = _walk(run, pages, feed_ticks)
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
          feed_ticks: Sequence[int]) -> RangeWalk:
    first, last = run[0], run[-1]
    lower = feed_ticks[first * PAGE - 1] if first else feed_ticks[0] - 1
    upper = feed_ticks[min((last + 1) * PAGE, len(feed_ticks)) - 1]
    keys = tuple(key for page in run for _, key in sorted(pages[page]))
    return RangeWalk(lower, upper, keys, in_range(feed_ticks, lower, upper))


def keys_per_request(key_field: str, keys: Sequence[Any], max_query_chars: int) -> int:
    """About how many `key eq '…'` terms fit in one URL (percent-encoded spaces)."""
    if not keys:
        return 1
    average = sum(len(str(k)) for k in keys) / len(keys)
    term = len(key_field) + len("%20eq%20''%20or%20") + average
    # The rest of the query ($orderby, $top, maybe $expand) takes about 100 characters.
    return max(1, int((max_query_chars - 100) // term))
