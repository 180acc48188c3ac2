"""The census comparison (pure): every difference found once, and a repaired store equal to
the feed, on which a second comparison finds nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.drift import compare, newer

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
