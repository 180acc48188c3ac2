"""Request batching, against the simulator over HTTP into SQLite.

For any number of changed listings, and whether or not the server answers some photo
expansions empty (as Trestle has under quota pressure):
- new photo sets arrive inline with their listings (`$expand=Media`): the Media endpoint
  is asked only for the listings whose expansion came back short, 20 listings a request;
- so the run costs no more than walking the changed listings would without any photos;
- a small resource is planned without a `$count` request;
- and the database ends equal to the feed (a short set is asked for again, never taken
  as "no photos").
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import start_simulator
from tests.integration.sync_fixtures import canonical, create_database, settings_for
from trestle_tasks.cli.local import sync_local
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

pytestmark = pytest.mark.integration
PAGE_SIZE = 50


@pytest.fixture(scope="module")
def synced():
    sim = start_simulator(records=240, seed=15)
    folder = Path(tempfile.mkdtemp(prefix="batching-"))
    url, _ = create_database("sqlite", folder)
    config = settings_for(sim, url, LOCK_DIR=str(folder), TRESTLE_PAGE_SIZE=str(PAGE_SIZE),
                          SYNC_WINDOW_SIZE="1000")
    runs = sync_local(LocalRuntime(config), ["Property", "Media", "Office"])
    assert all(r.run.status == "succeeded" for r in runs)
    yield sim, config, url, folder
    sim.stop()


def requests_served(sim, resource: str) -> int:
    return sum(by_client["by_resource"].get(resource, 0)
               for by_client in sim.stats()["requests"].values())


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changed=st.integers(1, 120), empty_rate=st.sampled_from([0.0, 0.3, 1.0]),
       seed=st.integers(0, 10_000))
def test_photo_sets_ride_along_with_their_listings(synced, changed, empty_rate, seed):
    sim, config, _, _ = synced
    sim.configure(rate_empty_expand=empty_rate, fault_seed=seed)
    try:
        sim.mutate("Property", count=changed, seed=seed)
        media_requests_before = requests_served(sim, "Media")
        run = sync_local(LocalRuntime(config), ["Property"])[0].run
        media_requests_after = requests_served(sim, "Media")
    finally:
        sim.configure(rate_empty_expand=0.0)
    windows = run.details["windows"]
    refetched = sum(w["media_refetched"] for w in windows)
    photo_listings = sum(w["media_listings"] for w in windows)
    media_requests = media_requests_after - media_requests_before

    assert run.status == "succeeded"
    assert run.records_fetched == changed
    # Only short expansions cost Media requests, 20 listings to one, page by page (a
    # page's listings are finished before the next page is read: memory stays flat).
    property_pages = changed // PAGE_SIZE + 1  # a full last page is followed by an empty one
    assert math.ceil(refetched / 20) <= media_requests
    assert media_requests <= math.ceil(refetched / 20) + property_pages - 1
    if empty_rate == 0.0:
        assert refetched == 0 and media_requests == 0
    # The whole run: the Property pages and those refetches; a small resource needs no
    # planning request.
    assert run.api_requests == property_pages + media_requests
    # Without $expand every changed photo set would have cost its share of a request (page
    # by page, as above); with it only the short ones do.
    assert refetched <= photo_listings
    assert media_requests <= math.ceil(photo_listings / 20) + property_pages - 1
    store = factory.store(config)
    stored = {canonical(r) for r in store.records("Media")}
    assert stored == {canonical(r) for r in sim.records("Media")}


def test_a_big_resource_is_still_planned_from_a_census(synced):
    """The small-resource shortcut never applies to one that does not fit in half a window:
    its range is counted and cut by one census request."""
    sim, _, url, folder = synced
    tight = settings_for(sim, url, LOCK_DIR=str(folder), TRESTLE_PAGE_SIZE=str(PAGE_SIZE),
                         SYNC_WINDOW_SIZE="100")
    sim.mutate("Property", count=150, seed=99)
    run = sync_local(LocalRuntime(tight), ["Property"])[0].run
    assert run.status == "succeeded"
    # 240 stored records do not fit in half of a 100-record window: a census plans the run
    # (the 150 changes share one timestamp, a tie no window boundary may split).
    assert run.windows_total == 1 and not run.details["notes"]
    assert run.records_fetched == 150
    walk_pages = 150 // PAGE_SIZE + 1  # a full last page is followed by an empty one
    assert run.api_requests == 1 + walk_pages
