"""Pagination completeness: every record exactly once, over real HTTP.

For arbitrary page sizes, full last pages (a nextLink leading to an empty page), and
records added or modified during the walk.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.trestle.pager import (
    KeysetRange,
    census_versions,
    replication_query,
    walk_keyset,
    walk_links,
)
from trestle_tasks.trestle.query import ODataQuery

from .conftest import build_client, start_simulator

pytestmark = pytest.mark.integration
SLIM = ("ListingKey", "ModificationTimestamp")


def keyset_order(records):
    return sorted(records, key=lambda r: (ODataTimestamp.parse(r["ModificationTimestamp"]).ticks,
                                          r["ListingKey"]))


def walked_keys(pages):
    return [record["ListingKey"] for page in pages for record in page.records]


@settings(max_examples=15)
@given(page_size=st.integers(1, 40), full_pages=st.integers(0, 4), remainder=st.integers(0, 39),
       seed=st.integers(0, 10_000))
def test_keyset_walk_returns_every_record_exactly_once(page_size, full_pages, remainder, seed):
    count = page_size * full_pages + (remainder % page_size)
    sim = start_simulator(records=count, seed=seed)
    try:
        client = build_client(sim)
        pages = list(walk_keyset(client, KeysetRange("Property", "ListingKey"), select=SLIM,
                                 page_size=page_size))
        keys = walked_keys(pages)
        assert Counter(keys) == Counter(r["ListingKey"] for r in sim.records("Property"))
        if count and count % page_size == 0:
            # A full last page carries a link; the walk ends on the empty page after it.
            assert pages[-2].next_link is not None and pages[-1].records == []
        assert pages[-1].next_link is None
    finally:
        sim.stop()


@settings(max_examples=10)
@given(page_size=st.integers(5, 60), modified=st.integers(1, 20), added=st.integers(0, 10),
       seed=st.integers(0, 10_000))
def test_changes_during_the_walk_are_never_duplicated_and_caught_next_run(
    page_size, modified, added, seed
):
    sim = start_simulator(records=200, seed=seed)
    try:
        client = build_client(sim)
        before = keyset_order(sim.records("Property"))
        upper = ODataTimestamp.now()  # fixed when the run is planned
        window = KeysetRange("Property", "ListingKey", upper=upper)
        walk = walk_keyset(client, window, select=SLIM, page_size=page_size)
        first = next(walk)
        reached = len(first.records)
        changed = set(sim.mutate("Property", count=modified, seed=seed)["modified"])
        sim.upsert("Property", [{"ListingKey": f"NEW{seed}-{i}"} for i in range(added)])
        rest = list(walk)
        keys = walked_keys([first, *rest])

        assert len(keys) == len(set(keys)), "a record was returned twice"
        not_yet_reached = {r["ListingKey"] for r in before[reached:]} & changed
        assert set(keys) == {r["ListingKey"] for r in before} - not_yet_reached

        # The next run starts at this run's upper bound and catches every change.
        next_run = KeysetRange("Property", "ListingKey", lower=(upper, ""))
        caught = set(walked_keys(walk_keyset(client, next_run, select=SLIM,
                                             page_size=page_size)))
        assert caught >= changed | {f"NEW{seed}-{i}" for i in range(added)}
    finally:
        sim.stop()


def test_ties_larger_than_a_page_are_walked_whole():
    sim = start_simulator(records=3000, seed=7)
    try:
        stamps = Counter(r["ModificationTimestamp"] for r in sim.records("Property"))
        tie_stamp, tie_size = stamps.most_common(1)[0]
        assert tie_size > 100, "the simulator should produce a large tie"
        client = build_client(sim)
        tie = ODataTimestamp.parse(tie_stamp)
        window = KeysetRange("Property", "ListingKey", lower=(ODataTimestamp(tie.ticks - 1), ""),
                              upper=tie)
        keys = walked_keys(walk_keyset(client, window, select=SLIM, page_size=100))
        assert len(keys) == len(set(keys)) == tie_size
    finally:
        sim.stop()


def test_replication_walk_follows_links_to_the_end():
    sim = start_simulator(records=2500, seed=3)
    try:
        client = build_client(sim)
        query = replication_query(ODataQuery("Property", select=SLIM), top=1000)
        pages = list(walk_links(client, query))
        keys = walked_keys(pages)
        assert Counter(keys) == Counter(r["ListingKey"] for r in sim.records("Property"))
        assert all("/Property/replication" in p.next_link for p in pages[:-1])
        assert pages[-1].next_link is None
    finally:
        sim.stop()


def test_census_collects_every_key_with_its_exact_timestamp(simulator):
    client = build_client(simulator)
    pairs = [pair for page in census_versions(client, "Property", "ListingKey", page_size=70)
             for pair in page]
    assert pairs == sorted(
        (r["ListingKey"], ODataTimestamp.parse(r["ModificationTimestamp"]).ticks)
        for r in simulator.records("Property"))


def test_a_census_takes_300000_pairs_a_request(simulator):
    """The key and ModificationTimestamp are InKeyIndex fields: one request, not ten."""
    client = build_client(simulator)
    pages = list(census_versions(client, "Property", "ListingKey"))
    assert len(pages) == 1 and len(pages[0]) == len(simulator.keys("Property"))
    assert client.stats.requests == 1
