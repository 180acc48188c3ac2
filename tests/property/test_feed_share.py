"""Fair sharing of the cluster between feeds (coordination/worker_slots.feed_share)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.coordination.worker_slots import feed_share, windows_wanted


@given(allowed=st.integers(1, 64), live=st.integers(0, 64), feeds=st.integers(1, 20))
def test_a_feed_never_takes_the_last_live_slot_from_the_others(allowed, live, feeds):
    share = feed_share(allowed, live, feeds)
    assert 1 <= share <= windows_wanted(allowed, live)  # never past its own setting
    if feeds > 1 and live > 1:
        assert share <= live - 1  # one slot is always left to the other feeds
    if feeds == 1:
        assert share == windows_wanted(allowed, live)  # one feed: cut as before
    if feeds > 1 and live > 1 and allowed >= live - 1:
        assert share == live - 1  # and otherwise the feed takes all it may

