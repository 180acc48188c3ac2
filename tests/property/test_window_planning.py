"""Planning windows: contiguous, complete, sized to the target, ties never split."""

from __future__ import annotations

import bisect
import itertools

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.finalize import finished_prefix_upper
from trestle_tasks.sync.model import RunPlan, WindowOutcome
from trestle_tasks.sync.plan import split_range


def counter_over(ticks: list[int]):
    ordered = sorted(ticks)
    calls = []

    def count(lower, upper):
        calls.append((lower, upper))
        start = 0 if lower is None else bisect.bisect_right(ordered, lower)
        return bisect.bisect_right(ordered, upper) - start

    return count, calls


feeds = st.lists(st.integers(1, 10_000), max_size=400)


@given(feeds, st.integers(1, 60), st.booleans(), st.sampled_from([1, 4]))
def test_windows_cover_the_range_exactly(ticks, target, from_start, parallel):
    upper = 10_000
    lower = None if from_start else 0
    count, _ = counter_over(ticks)
    windows = split_range(count, lower, upper, target,
                          earliest=lambda: min(ticks) if ticks else None, parallel=parallel)
    if not ticks:
        assert windows == []
        return
    assert windows[0].lower_ticks == lower
    assert windows[-1].upper_ticks == upper
    for before, after in itertools.pairwise(windows):
        assert before.upper_ticks == after.lower_ticks  # no gap, no overlap
    assert [w.index for w in windows] == list(range(len(windows)))
    assert sum(w.expected for w in windows) == len(ticks)
    for window in windows:
        real, _ = counter_over(ticks)
        assert window.expected == real(window.lower_ticks, window.upper_ticks)
        if window.expected > target:
            # Only a single instant shared by more records than the target stays oversized.
            inside = {t for t in ticks if (window.lower_ticks or 0) < t <= window.upper_ticks}
            assert len(inside) == 1


@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_the_watermark_moves_over_the_succeeded_prefix_only(results):
    count, _ = counter_over(list(range(1, 200)))
    windows = split_range(count, 0, 1000, max(1, 200 // len(results)))
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
