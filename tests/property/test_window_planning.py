"""Planning windows from a census: contiguous, complete, exact counts, ties never split,
as many as the cluster has slots within the size bounds; lanes inside each window, none
empty, none past the window, no tie split."""

from __future__ import annotations

import bisect
import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.finalize import finished_prefix_upper
from trestle_tasks.sync.model import RunPlan, WindowOutcome
from trestle_tasks.sync.window_cuts import cut_lanes, cut_windows, window_size

feeds = st.integers(1, 10_000).flatmap(
    lambda spread: st.lists(st.integers(1, spread), max_size=400))  # narrow spreads: ties


def in_window(ticks: list[int], lower: int | None, upper: int) -> int:
    start = 0 if lower is None else bisect.bisect_right(ticks, lower)
    return bisect.bisect_right(ticks, upper) - start


@given(feeds, st.booleans(), st.integers(1, 20), st.integers(1, 50), st.integers(1, 200))
def test_windows_cover_the_range_exactly(ticks, from_start, wanted, min_size, max_extra):
    ticks = sorted(ticks)
    upper, lower = 10_000, None if from_start else 0
    max_size = min_size + max_extra
    windows = cut_windows(ticks, lower, upper, windows_wanted=wanted, min_size=min_size,
                          max_size=max_size)
    if not ticks:
        assert windows == []
        return
    assert windows[0].lower_ticks == lower and windows[-1].upper_ticks == upper
    for before, after in itertools.pairwise(windows):
        assert before.upper_ticks == after.lower_ticks  # no gap, no overlap
    assert [w.index for w in windows] == list(range(len(windows)))
    size = window_size(len(ticks), windows_wanted=wanted, min_size=min_size,
                       max_size=max_size)
    for window in windows:
        assert window.expected == in_window(ticks, window.lower_ticks, window.upper_ticks)
        if window.expected > size:
            # Only a tie makes a window larger: its last timestamp began within the size.
            inside = [t for t in ticks if (window.lower_ticks is None
                                           or t > window.lower_ticks) and t <= window.upper_ticks]
            assert inside[size - 1] == inside[-1]
    for window in windows[:-1]:
        assert window.expected >= size  # only the last one may be short
    if size == math.ceil(len(ticks) / wanted):  # the bounds did not intervene
        assert len(windows) <= wanted


@given(st.integers(1, 2_000_000), st.integers(1, 64), st.integers(1, 5000),
       st.integers(1, 100_000))
def test_window_size_keeps_every_slot_busy_within_the_bounds(records, slots, low, high):
    high = max(low, high)
    size = window_size(records, windows_wanted=slots, min_size=low, max_size=high)
    assert low <= size <= high
    if low <= math.ceil(records / slots) <= high:
        assert math.ceil(records / size) <= slots
    elif math.ceil(records / slots) > high:
        # Too many records for one round: whole rounds, none more than needed.
        rounds = math.ceil(records / (high * slots))
        assert math.ceil(records / size) <= rounds * slots


@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_the_watermark_moves_over_the_succeeded_prefix_only(results):
    windows = cut_windows(list(range(1, 200)), 0, 1000, windows_wanted=len(results),
                          min_size=1, max_size=200)
    plan = RunPlan("r", "Property", "ListingKey", 0, 1000, tuple(windows), "l", "o", 1)
    outcomes = [WindowOutcome(w.window_id, w.index, "succeeded" if ok else "failed")
                for w, ok in zip(windows, results * len(windows), strict=False)]
    upper = finished_prefix_upper(plan, outcomes)
    prefix = 0
    for outcome in outcomes:
        if outcome.status != "succeeded":
            break
        prefix += 1
    expected = windows[prefix - 1].upper_ticks if prefix else None
    assert upper == expected


def requests_to_walk(records: int, page_size: int) -> int:
    """A keyset walk's requests: its full pages, and one more that comes back short
    (possibly empty, since Trestle links every full page)."""
    return records // page_size + 1


@given(feeds, st.booleans(), st.integers(1, 8), st.integers(1, 8), st.integers(1, 60))
def test_lanes_cut_each_window_into_nonempty_stretches_without_splitting_a_tie(
        ticks, from_start, wanted, lanes, page_size):
    ticks = sorted(ticks)
    upper, lower = 10_000, None if from_start else 0
    windows = cut_windows(ticks, lower, upper, windows_wanted=wanted, min_size=1,
                          max_size=10_000, lanes=lanes, page_size=page_size)
    for window in windows:
        bounds = window.lane_bounds()
        assert len(bounds) <= lanes
        assert bounds[0][0] == window.lower_ticks and bounds[-1][1] == window.upper_ticks
        for (_, before), (after, _) in itertools.pairwise(bounds):
            assert before == after  # lanes meet: no gap, no overlap
        counts = [in_window(ticks, low, high) for low, high in bounds]
        assert sum(counts) == window.expected
        assert all(counts), (window, counts)  # no lane walks an empty stretch
        if window.expected < page_size:
            assert not window.lanes  # one page: nothing to share
        walked_alone = requests_to_walk(window.expected, page_size)
        in_lanes = sum(requests_to_walk(c, page_size) for c in counts)
        assert in_lanes <= walked_alone + len(counts) - 1


@given(st.lists(st.integers(1, 50), min_size=1, max_size=3000), st.integers(2, 6),
       st.integers(2, 1000))
def test_lanes_without_ties_cost_at_most_one_request_more_and_share_the_round_trips(
        spread, lanes, page_size):
    lanes = min(lanes, page_size - 1)  # a lane is cut one record short of whole pages
    ticks = sorted(set(itertools.accumulate(spread)))  # distinct timestamps
    bounds = cut_lanes(ticks, 0, len(ticks), lanes=lanes, page_size=page_size)
    edges = [0, *(bisect.bisect_right(ticks, b) for b in bounds), len(ticks)]
    sizes = [b - a for a, b in itertools.pairwise(edges)]
    walked_alone = requests_to_walk(len(ticks), page_size)
    assert sum(requests_to_walk(size, page_size) for size in sizes) <= walked_alone + 1
    assert len(sizes) == min(lanes, walked_alone)  # every lane that can help is used
    longest = max(requests_to_walk(size, page_size) for size in sizes)
    assert longest <= math.ceil(walked_alone / len(sizes)) + 1  # round trips shared



def lane_sizes(ticks: list[int], bounds: tuple[int, ...]) -> list[int]:
    edges = [0, *(bisect.bisect_right(ticks, b) for b in bounds), len(ticks)]
    return [b - a for a, b in itertools.pairwise(edges)]


def test_a_tie_at_the_windows_end_takes_the_last_lane_instead_of_merging_two():
    # 3,998 distinct stamps, then a mass update stamping 1,354 records alike: the second
    # cut (after record 3,998) falls at the tie's edge, and used to merge lanes 2 and 3
    # into one walking 4 pages in a row.
    ticks = list(range(1, 3999)) + [10_000] * 1354
    bounds = cut_lanes(ticks, 0, len(ticks), lanes=3, page_size=1000)
    assert lane_sizes(ticks, bounds) == [1999, 1999, 1354]


def test_a_tie_across_a_cut_moves_the_cut_to_the_ties_start():
    ticks = list(range(1, 1501)) + [5_000] * 1000 + list(range(5_001, 7_853))
    bounds = cut_lanes(ticks, 0, len(ticks), lanes=3, page_size=1000)
    # The first cut (record 1,999) falls inside the tie: moved back to its start, so the
    # first lane keeps to its two pages and the tie goes whole to the second.
    assert lane_sizes(ticks, bounds) == [1500, 2498, 1354]


def test_a_tie_from_a_lanes_start_past_its_cut_is_that_lane_whole():
    ticks = [7] * 2500 + list(range(10, 2862))
    bounds = cut_lanes(ticks, 0, len(ticks), lanes=3, page_size=1000)
    assert lane_sizes(ticks, bounds) == [2500, 1498, 1354]
