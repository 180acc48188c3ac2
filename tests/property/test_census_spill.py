"""A census spilled to disk compares with the store exactly as the in-memory census does
(sync/census_spill.py against drift.compare, the oracle), whatever the keys, timestamps,
deletions, repeats and rejects."""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.census_spill import CensusSpill
from trestle_tasks.sync.drift import compare
from trestle_tasks.sync.repair_plan import PageBoundaries, SortedTicks, plan_repair

ticks = st.one_of(st.none(), st.integers(0, 20))


@st.composite
def feeds(draw):
    """A census (in pages), the stored rows and the rejects of one resource: its keys all
    text (ListingKey) or all integers, as a resource's are."""
    keys = draw(st.sampled_from([st.text(min_size=1, max_size=6), st.integers(-5, 50)]))
    return (draw(st.lists(st.lists(st.tuples(keys, ticks), max_size=12), max_size=5)),
            draw(st.dictionaries(keys, st.tuples(ticks, st.booleans()), max_size=25)),
            draw(st.dictionaries(keys, ticks, max_size=6)))


@given(feeds())
def test_the_spill_finds_the_same_drift_as_the_census_in_memory(feed):
    pages, stored, rejected = feed
    census: dict = {}
    for page in pages:
        census.update(page)
    stored_rows = [(key, t, deleted) for key, (t, deleted) in sorted(stored.items())]
    expected = compare(census, stored_rows, rejected)
    with CensusSpill() as spill:
        for page in pages:
            spill.add(page)
        got = spill.compare(iter(stored_rows), rejected)
        assert got.census == expected.census and got.stored == expected.stored
        assert got.newer_in_store == expected.newer_in_store
        for kind in ("missing", "restored", "stale", "gone", "rejected"):
            assert sorted(getattr(got, kind), key=repr) == \
                sorted(getattr(expected, kind), key=repr), kind
        assert got.missing == expected.missing  # in the same (code point) order
        assert got.to_fetch == expected.to_fetch
        wanted = sorted(expected.to_fetch, key=repr)
        assert spill.versions_of(wanted) == [(key, census[key]) for key in wanted]
        assert array("q", spill.sorted_ticks()) == array(
            "q", sorted(t for t in census.values() if t is not None))


def test_the_spill_leaves_nothing_behind(tmp_path):
    with CensusSpill(tmp_path) as spill:
        spill.add([("a", 1), ("b", None)])
        assert spill.count() == 2
    assert list(tmp_path.iterdir()) == []


@given(feed=st.lists(st.integers(0, 30), min_size=1, max_size=60).map(sorted),
       page=st.integers(1, 7),
       wanted_ticks=st.lists(st.integers(0, 60), max_size=20),
       per_request=st.integers(1, 4))
def test_page_boundaries_plan_the_repair_as_every_timestamp_does(
        feed, page, wanted_ticks, per_request):
    """The repair plan made from each page's first and last timestamp (PageBoundaries,
    counts asked of the spill) is the plan made from every timestamp held in memory."""
    full = SortedTicks(feed, page)
    with CensusSpill() as spill:
        spill.add((f"k{i:03d}", ticks) for i, ticks in enumerate(feed))
        bounded = PageBoundaries(spill.sorted_ticks(), spill.count_between, page)
        for ticks in set(feed):
            assert bounded.page_of(ticks) == full.page_of(ticks), ticks
        pages = (len(feed) + page - 1) // page
        for first in range(pages):
            for last in range(first, pages):
                assert bounded.bounds(first, last) == full.bounds(first, last)
                lower, upper = full.bounds(first, last)
                assert bounded.count_between(lower, upper) == full.count_between(lower, upper)
        # Wanted records carry timestamps of the feed (they are in the census).
        wanted = [(f"w{i}", feed[t % len(feed)]) for i, t in enumerate(wanted_ticks)]
        assert plan_repair(wanted, bounded, keys_per_request=per_request) == \
            plan_repair(wanted, full, keys_per_request=per_request)
