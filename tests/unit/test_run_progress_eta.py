"""The time left of a run, at the rate so far (store/sync_log_reports.RunProgress)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.store.sync_log_reports import RunProgress


def progress(fetched: int, expected: int | None) -> RunProgress:
    return RunProgress(windows_total=4, windows_done=1, windows_failed=0, fetched=fetched,
                       expected=expected)


@given(fetched=st.integers(1, 10**9), expected=st.integers(1, 10**9),
       elapsed=st.floats(0.001, 10**6), more=st.integers(0, 10**6))
def test_time_left_is_what_the_rate_so_far_needs_for_the_rest(fetched, expected, elapsed,
                                                              more):
    left = progress(fetched, expected).left_s(elapsed)
    assert left is not None and left >= 0
    if fetched >= expected:
        assert left == 0
    else:  # the whole run at this rate takes elapsed * expected / fetched
        assert math.isclose(elapsed + left, elapsed * expected / fetched, rel_tol=1e-9)
    later = progress(fetched + more, expected).left_s(elapsed)
    assert later is not None and later <= left + 1e-9  # more fetched, less left
    fraction = progress(fetched, expected).fraction
    assert fraction is not None and 0 < fraction <= 1


def test_nothing_is_promised_before_the_first_record_or_without_an_expected_total():
    assert progress(0, 100).left_s(30.0) is None
    assert progress(10, None).left_s(30.0) is None
    assert progress(10, 0).left_s(30.0) is None
    assert progress(10, 100).left_s(0.0) is None
    assert progress(10, None).fraction is None
