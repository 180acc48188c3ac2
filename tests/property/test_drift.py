"""The census comparison (pure): every difference found once, and a repaired store equal to
the feed, on which a second comparison finds nothing."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.drift import compare, newer
from trestle_tasks.sync.repair_plan import plan_repair

KEYS = st.text(alphabet="0123456789abcdef", min_size=1, max_size=4)
TICKS = st.one_of(st.none(), st.integers(min_value=0, max_value=20))
CENSUS = st.dictionaries(KEYS, TICKS, max_size=30)
STORED = st.dictionaries(KEYS, st.tuples(TICKS, st.booleans()), max_size=30)


def repaired(census: dict, stored: dict) -> dict:
    """What the reconcile does with the findings, as a model: fetched records take the
    feed's version (through the guarded upsert), gone ones are marked deleted."""
    drift = compare(census, sorted((k, t, d) for k, (t, d) in stored.items()))
    result = dict(stored)
    for key in drift.to_fetch:
        old = stored.get(key)
        replaced = old is None or old[0] is None or (
            census[key] is not None and census[key] >= old[0])  # the loader's guard
        result[key] = (census[key] if replaced else old[0], False)
    for key in drift.gone:
        result[key] = (stored[key][0], True)
    return result


@given(CENSUS, STORED)
def test_every_difference_is_classified_once(census: dict, stored: dict) -> None:
    drift = compare(census, sorted((k, t, d) for k, (t, d) in stored.items()))
    kinds = [drift.missing, drift.restored, drift.stale, drift.gone]
    flat = [key for kind in kinds for key in kind]
    assert len(flat) == len(set(flat))
    live = {k for k, (_, deleted) in stored.items() if not deleted}
    assert set(drift.missing) == set(census) - set(stored)
    assert set(drift.restored) == {k for k in census if k in stored and stored[k][1]}
    assert set(drift.gone) == live - set(census)
    assert set(drift.stale) == {k for k in live & set(census)
                                if newer(census[k], stored[k][0])}
    assert drift.census == len(census) and drift.stored == len(live)
    assert drift.total == len(flat)


@given(CENSUS, STORED)
def test_after_the_repair_the_live_store_equals_the_feed(census: dict, stored: dict) -> None:
    after = repaired(census, stored)
    live = {k for k, (_, deleted) in after.items() if not deleted}
    assert live == set(census)
    again = compare(census, sorted((k, t, d) for k, (t, d) in after.items()))
    assert again.total == 0 and again.to_fetch == []


@given(CENSUS, STORED, st.dictionaries(KEYS, TICKS, max_size=30))
def test_versions_that_already_failed_validation_are_not_fetched_again(
        census: dict, stored: dict, rejected: dict) -> None:
    rows = sorted((k, t, d) for k, (t, d) in stored.items())
    plain = compare(census, rows)
    drift = compare(census, rows, rejected)
    differing = {*plain.missing, *plain.restored, *plain.stale}
    known = {k for k in differing
             if k in rejected and census[k] is not None and rejected[k] == census[k]}
    assert set(drift.rejected) == known
    assert set(drift.to_fetch) == differing - known
    assert drift.gone == plain.gone


# Narrow tick ranges make large ties, wide ones spread records out.
WANTED_TICKS = st.integers(1, 5000).flatmap(
    lambda spread: st.lists(st.integers(0, spread), min_size=1, max_size=3000))


@given(WANTED_TICKS, st.data(), st.integers(1, 60))
def test_a_repair_plan_covers_every_wanted_key_once_and_never_costs_more(
        feed: list[int], data: st.DataObject, per_request: int) -> None:
    feed_ticks = sorted(feed)
    census = {f"k{i}": t for i, t in enumerate(feed)}
    chosen = data.draw(st.sets(st.sampled_from(sorted(census)), max_size=len(census)))
    undated = data.draw(st.sets(st.text("xyz", min_size=1, max_size=3), max_size=5))
    wanted = [(k, census[k]) for k in sorted(chosen)] + [(k, None) for k in sorted(undated)]
    plan = plan_repair(wanted, feed_ticks, keys_per_request=per_request)
    placed = [*plan.by_key, *(k for walk in plan.ranges for k in walk.keys)]
    assert sorted(placed) == sorted(k for k, _ in wanted)
    for walk in plan.ranges:
        assert all(walk.lower < census[k] <= walk.upper for k in walk.keys)
        assert walk.feed_records == sum(walk.lower < t <= walk.upper for t in feed_ticks)
        assert len(walk.keys) >= per_request
    # A walk costs at most one request more than naming its keys (its trailing page).
    by_key_only = math.ceil(len(wanted) / per_request)
    assert plan.requests(per_request) <= by_key_only + 2 * len(plan.ranges)
    assert all(w.requests <= math.ceil(len(w.keys) / per_request) + 1 for w in plan.ranges)
    ranges_hold = {k for walk in plan.ranges for k in walk.keys}
    assert all(census[k] is not None for k in ranges_hold)
