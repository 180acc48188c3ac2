"""Reading ahead changes nothing but timing: same items, same order, errors where they
happened, never more than `depth` items waiting, and the run id in the helper's logs."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.prefetch import prefetched


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
            for item in prefetched(source(items, fail_at), depth):
                got.append(item)
        assert got == items[:fail_at]
    else:
        assert list(prefetched(source(items), depth)) == items


@given(st.integers(1, 3), st.integers(0, 5))
def test_an_early_stop_leaves_at_most_depth_items_read_ahead(depth, taken):
    produced: list[int] = []
    pages = prefetched(source(list(range(50)), produced=produced), depth)
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
    assert list(prefetched(pages())) == [0, 1, 2]
    assert {value for value, _ in seen} == {"run-42"}
    assert {name for _, name in seen} == {"page-prefetch"}
