"""Deletions: a complete key census soft-deletes what left the feed; a partial one nothing."""

from __future__ import annotations

import pytest

from trestle_tasks import factory
from trestle_tasks.errors import RetriesExhaustedError
from trestle_tasks.sync.local import sync_local
from trestle_tasks.sync.reconcile import CensusRefusedError, reconcile

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for

pytestmark = pytest.mark.integration


def run_reconcile(settings, **options):
    return reconcile("Property", store=factory.store(settings),
                     client=factory.trestle_client(settings, shared=False),
                     lock=factory.run_lock(settings, shared=False), credential="c",
                     lock_ttl_s=60, **options)


@pytest.fixture
def synced(tmp_path):
    sim = start_simulator(records=400, seed=12)
    url, _ = create_database("sqlite", tmp_path)
    settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0")
    sync_local(settings, ["Property"])
    yield sim, settings
    sim.stop()


def live_keys(settings):
    return set(factory.store(settings).stored_keys("Property"))


def test_records_that_left_the_feed_are_marked_and_come_back(synced):
    sim, settings = synced
    keys = sim.keys("Property")
    gone = keys[:7]
    kept_record = next(r for r in sim.records("Property") if r["ListingKey"] == gone[0])
    for key in gone:
        sim.delete("Property", key)
    run = run_reconcile(settings)
    assert run.status == "succeeded" and run.records_deleted == 7
    assert live_keys(settings) == set(keys) - set(gone)
    assert set(factory.store(settings).deleted_keys("Property")) == set(gone)

    # One record returns unchanged (same ModificationTimestamp): a sync would not refetch
    # it, so the census restores it.
    sim.upsert("Property", [kept_record])
    again = run_reconcile(settings)
    assert again.details["restored"] == 1 and again.records_deleted == 0
    assert gone[0] in live_keys(settings)


def test_a_census_that_fails_part_way_deletes_nothing(synced):
    sim, settings = synced
    before = live_keys(settings)
    for key in sim.keys("Property")[:50]:
        sim.delete("Property", key)
    sim.configure(rate_5xx=1.0)
    with pytest.raises(RetriesExhaustedError):
        run_reconcile(settings)
    assert live_keys(settings) == before


def test_a_census_missing_most_records_is_refused(synced):
    sim, settings = synced
    before = live_keys(settings)
    for key in sim.keys("Property")[:300]:
        sim.delete("Property", key)
    with pytest.raises(CensusRefusedError, match="refusing"):
        run_reconcile(settings)
    assert live_keys(settings) == before
