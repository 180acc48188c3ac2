"""Reconcile against the simulator: a complete census repairs and soft-deletes; a partial
one, or one that looks like a mass deletion, changes nothing; a dry run only measures."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from trestle_tasks.cli.local import sync_local
from trestle_tasks.core.errors import RetriesExhaustedError
from trestle_tasks.store.records import layout_of
from trestle_tasks.sync.reconcile import CensusRefusedError, reconcile
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .drift_fixtures import DAY_TICKS, arrive_below, change_below, stamp
from .sync_fixtures import canonical, create_database, settings_for

pytestmark = pytest.mark.integration


def run_reconcile(settings, resource="Property", **options):
    return reconcile(resource, store=factory.store(settings),
                     client=LocalRuntime(settings).trestle_client(),
                     lock=factory.run_lock(settings),
                     lock_ttl_s=60, synced_resources=settings.resources, **options)


@pytest.fixture
def synced(tmp_path):
    sim = start_simulator(records=400, seed=12)
    url, _ = create_database("sqlite", tmp_path)
    settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0")
    sync_local(LocalRuntime(settings), ["Property"])
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


def stored_state(settings, resource="Property"):
    return sorted(canonical(r) for r in factory.store(settings).records(
        resource, include_deleted=True)), sorted(factory.store(settings).deleted_keys(resource))


@pytest.mark.parametrize("fault", ["rate_5xx", "rate_connection_reset"])
def test_a_census_that_fails_on_its_second_page_changes_nothing(synced, fault):
    sim, settings = synced
    mark = factory.store(settings).sync_log.read_watermark("Property")
    for key in sim.keys("Property")[:20]:
        sim.delete("Property", key)
    change_below(sim, sim.keys("Property")[-5:], mark.ticks)
    arrive_below(sim, 3, mark.ticks - DAY_TICKS)
    before = stored_state(settings)
    pages = []

    def second_page_fails(records: int) -> None:
        pages.append(records)
        sim.configure(**{fault: 1.0})  # a real fault, over HTTP, from the next request on

    with pytest.raises(RetriesExhaustedError):
        run_reconcile(settings, census_page_size=100, on_census=second_page_fails)
    sim.configure(**{fault: 0.0})
    assert pages == [100]
    assert stored_state(settings) == before
    failed = factory.store(settings).sync_log.recent_runs(limit=1, resource="Property")[0]
    assert failed.status == "failed" and failed.records_fetched == 0


def test_a_dry_run_measures_the_drift_and_changes_nothing(synced):
    sim, settings = synced
    mark = factory.store(settings).sync_log.read_watermark("Property")
    for key in sim.keys("Property")[:4]:
        sim.delete("Property", key)
    change_below(sim, sim.keys("Property")[-3:], mark.ticks)
    arrive_below(sim, 6, mark.ticks - 30 * DAY_TICKS)
    before = stored_state(settings)
    run = run_reconcile(settings, dry_run=True)
    assert run.status == "succeeded"
    assert {k: run.details[k] for k in ("dry_run", "missing", "stale", "gone", "fetched",
                                       "deleted", "census_requests", "repair_requests")} == {
        "dry_run": True, "missing": 6, "stale": 3, "gone": 4, "fetched": 0, "deleted": 0,
        "census_requests": 1, "repair_requests": 0}
    assert run.api_requests == 1
    assert stored_state(settings) == before
    healed = run_reconcile(settings)
    assert (healed.details["fetched"], healed.details["deleted"]) == (9, 4)
    assert sorted(canonical(r) for r in factory.store(settings).records("Property")) == \
        sorted(canonical(r) for r in sim.records("Property"))


def test_a_census_missing_most_records_is_refused(synced):
    sim, settings = synced
    mark = factory.store(settings).sync_log.read_watermark("Property")
    for key in sim.keys("Property")[:300]:
        sim.delete("Property", key)
    arrive_below(sim, 2, mark.ticks - DAY_TICKS)  # no repair either: nothing changes
    before = stored_state(settings)
    with pytest.raises(CensusRefusedError, match="refusing"):
        run_reconcile(settings)
    assert stored_state(settings) == before


@pytest.fixture
def synced_with_children(tmp_path):
    sim = start_simulator(records=300, seed=21)
    url, _ = create_database("sqlite", tmp_path)
    settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0",
                            TRESTLE_RESOURCES="Property,OpenHouse,Media")
    assert all(r.run.status == "succeeded"
               for r in sync_local(LocalRuntime(settings), settings.resources))
    yield sim, settings
    sim.stop()


def test_listings_arriving_below_the_watermark_come_with_their_photos_and_open_houses(
        synced_with_children):
    """120 listings made visible with 30-day-old timestamps, each with photos and an open
    house: an incremental sync sees none of them; `reconcile --resource Property` stores
    them as complete as a sync would, within the URL bound (the simulator answers 414 past
    2,048 characters), in a few batched requests."""
    sim, settings = synced_with_children
    store = factory.store(settings)
    mark = store.sync_log.read_watermark("Property")
    arrived = arrive_below(sim, 120, mark.ticks - 30 * DAY_TICKS)
    incremental = sync_local(LocalRuntime(settings), settings.resources)
    assert all(r.run.records_fetched == 0 for r in incremental)
    assert not set(arrived) & set(store.stored_keys("Property"))

    run = run_reconcile(settings)
    assert run.status == "succeeded", run.error
    figures = run.details
    assert (figures["missing"], figures["fetched"], figures["stale"], figures["gone"]) == \
        (120, 120, 0, 0)
    for resource in ("Property", "Media", "OpenHouse"):
        assert sorted(canonical(r) for r in store.records(resource)) == \
            sorted(canonical(r) for r in sim.records(resource)), resource
    assert figures["open_houses_fetched"] == 120
    # About 40 keys fit one URL: 3 batches of listings (photos inline), 3 of open houses.
    assert figures["repair_requests"] <= 8
    assert figures["census_requests"] == 1
    for resource in ("Media", "OpenHouse"):
        quiet = run_reconcile(settings, resource)
        assert (quiet.details["missing"], quiet.details["stale"], quiet.details["gone"]) == \
            (0, 0, 0), resource


def test_a_version_that_fails_validation_is_not_fetched_every_day(synced):
    """A listing arriving below the watermark with a value its declared type refuses is
    fetched once, rejected into etl_rejects, and left alone until the feed changes it."""
    sim, settings = synced
    mark = factory.store(settings).sync_log.read_watermark("Property")
    [key] = arrive_below(sim, 1, mark.ticks - DAY_TICKS)
    sim.upsert("Property", [{"ListingKey": key, "BedroomsTotal": "three",
                             "ModificationTimestamp": stamp(mark.ticks - DAY_TICKS)}])
    first = run_reconcile(settings)
    assert (first.details["missing"], first.details["fetched"]) == (1, 1)
    assert first.records_rejected == 1
    second = run_reconcile(settings)
    assert (second.details["missing"], second.details["fetched"],
            second.details["rejected_before"]) == (0, 0, 1)
    assert second.api_requests == 1
    # Fixed in the feed (a newer version): fetched and stored.
    sim.upsert("Property", [{"ListingKey": key, "BedroomsTotal": 3,
                             "ModificationTimestamp": stamp(mark.ticks - DAY_TICKS + 1)}])
    third = run_reconcile(settings)
    assert (third.details["missing"], third.details["fetched"]) == (1, 1)
    assert key in live_keys(settings)


def test_a_stretch_of_lost_rows_is_walked_not_named(tmp_path):
    """1,500 consecutive (in time) rows lost from a 3,000-listing store — a restore from
    an old backup — cost a couple of page walks, not 34 batches of keys."""
    sim = start_simulator(records=3000, seed=33)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0",
                                TRESTLE_RESOURCES="Property")
        assert sync_local(LocalRuntime(settings), ["Property"])[0].run.status == "succeeded"
        store = factory.store(settings)
        by_time = sorted(sim.records("Property"),
                         key=lambda r: (r["ModificationTimestamp"], r["ListingKey"]))
        lost = [r["ListingKey"] for r in by_time[1000:2500]]
        scattered = [r["ListingKey"] for r in by_time[:1000:100]]
        layout = layout_of(store.engine, "Property")
        with store.engine.begin() as conn:
            conn.execute(sa.delete(layout.table).where(
                layout.table.c[layout.key_column].in_(lost + scattered)))
        run = run_reconcile(settings)
        figures = run.details
        assert (figures["missing"], figures["fetched"]) == (1510, 1510)
        assert figures["range_walks"] >= 1 and figures["fetched_by_key"] >= 10
        assert figures["repair_requests"] <= 6, figures  # by key alone: 34
        assert sorted(canonical(r) for r in store.records("Property")) == \
            sorted(canonical(r) for r in sim.records("Property"))
    finally:
        sim.stop()
