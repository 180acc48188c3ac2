"""Reading ahead changes nothing but timing: same items, same order, errors where they
happened, never more than `depth` items waiting, and the run id in the helper's logs.
Interleaved lanes: every item of every lane exactly once, each lane's own order kept, the
first error raised and every lane stopped."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.prefetch import interleaved


class Boom(Exception):
    pass


def source(items, fail_at=None, produced=None):
    for index, item in enumerate(items):
        if index == fail_at:
            raise Boom(index)
        if produced is not None:
            produced.append(item)
        yield item


@given(st.lists(st.integers()), st.none() | st.integers(0, 30), st.integers(1, 3))
def test_same_items_in_order_and_errors_at_their_place(items, fail_at, depth):
    got = []
    failing = fail_at is not None and fail_at < len(items)
    if failing:
        with pytest.raises(Boom):
            for item in interleaved([source(items, fail_at)], depth):
                got.append(item)
        assert got == items[:fail_at]
    else:
        assert list(interleaved([source(items)], depth)) == items


@given(st.integers(1, 3), st.integers(0, 5))
def test_an_early_stop_leaves_at_most_depth_items_read_ahead(depth, taken):
    produced: list[int] = []
    pages = interleaved([source(list(range(50)), produced=produced)], depth)
    for _ in range(taken):
        next(pages)
    time.sleep(0.05)  # let the helper run as far ahead as it may
    pages.close()
    # taken handed out, `depth` queued, one more held by a helper waiting for room
    assert len(produced) <= taken + depth + 1


def test_the_helper_thread_sees_the_callers_context():
    run_id = contextvars.ContextVar("run_id", default=None)
    seen = []

    def pages():
        for index in range(3):
            seen.append((run_id.get(), threading.current_thread().name))
            yield index

    run_id.set("run-42")
    assert list(interleaved([pages()])) == [0, 1, 2]
    assert {value for value, _ in seen} == {"run-42"}
    assert {name for _, name in seen} == {"page-prefetch"}


@given(st.lists(st.lists(st.integers(0, 1000), max_size=30), min_size=1, max_size=5),
       st.integers(1, 3))
def test_lanes_give_every_item_once_each_in_its_lanes_order(lanes, depth):
    tagged = [[(number, index, value) for index, value in enumerate(items)]
              for number, items in enumerate(lanes)]
    got = list(interleaved([iter(lane) for lane in tagged], depth))
    assert sorted(got) == sorted(item for lane in tagged for item in lane)
    for number, lane in enumerate(tagged):
        assert [item for item in got if item[0] == number] == lane


@given(st.integers(2, 5), st.integers(0, 4), st.integers(0, 20))
def test_a_failing_lane_raises_and_stops_the_others(lanes, failing, fail_at):
    failing %= lanes
    produced: list[int] = []
    sources = [source(list(range(1000)), produced=produced) for _ in range(lanes - 1)]
    sources.insert(failing, source(list(range(1000)), fail_at=fail_at))
    with pytest.raises(Boom):
        for _ in interleaved(sources):
            time.sleep(0.0005)  # a slow consumer: healthy lanes run ahead
    time.sleep(0.05)
    stopped_at = len(produced)
    time.sleep(0.05)
    assert len(produced) == stopped_at < 1000 * (lanes - 1)  # nobody walks on
    assert not [t for t in threading.enumerate() if t.name.startswith("page-prefetch-lane")]


@given(st.integers(2, 5), st.integers(1, 2), st.integers(0, 5))
def test_lanes_hold_at_most_depth_waiting_and_one_each_in_hand(lanes, depth, taken):
    produced: list[int] = []
    pages = interleaved([source(list(range(50)), produced=produced) for _ in range(lanes)],
                        depth)
    for _ in range(taken):
        next(pages)
    time.sleep(0.05)  # let every lane run as far ahead as it may
    pages.close()
    assert len(produced) <= taken + depth + lanes
