"""A first load builds the table's secondary indexes once, at its end; a first load that
dies leaves them to the next run; a table with rows never loses them. Real databases,
the simulator over HTTP."""

from __future__ import annotations

import threading

import pytest

from trestle_tasks.cli.local import sync_local
from trestle_tasks.coordination.locks import LockGrant
from trestle_tasks.store.indexes import missing_indexes
from trestle_tasks.store.records import layout_of
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.plan import (
    WIDE_RECORD_FIELDS,
    RunPlan,
    WindowSizing,
    defers_indexes,
    plan_run,
)
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import (
    DIALECTS,
    create_database,
    drop_database,
    fresh_database,
    settings_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=DIALECTS)
def database_url(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


def missing(store, resource: str = "Property") -> list[str]:
    layout = layout_of(store.engine, resource, store.schema)
    return [str(index.name) for index in missing_indexes(store.engine, layout)]


def all_indexes(store, resource: str = "Property") -> list[str]:
    return sorted(str(i.name) for i in layout_of(store.engine, resource, store.schema)
                  .table.indexes)


def plan_first_load(store, client, lock) -> RunPlan:
    """Plan a full run of Property, deferring indexes, as a worker would (no windows run)."""
    planned = plan_run("Property", store=store, client=client, lock=lock, lock_ttl_s=60,
                       sizing=WindowSizing.for_cluster(slots=1, page_size=100,
                                                       max_records=1000),
                       full=True, defer_indexes=True,
                       prepare=lambda: ensure_tables(store, client, ["Property"]))
    assert isinstance(planned, RunPlan)
    return planned


def test_a_first_load_builds_the_indexes_at_its_end_and_later_runs_keep_them(
        database_url, tmp_path):
    sim = start_simulator(records=600, seed=4)
    try:
        # The simulator's records are narrow (122 fields): deferral asked for, not auto.
        settings = settings_for(sim, database_url, SYNC_WINDOW_SIZE="200",
                                TRESTLE_PAGE_SIZE="100", LOCK_DIR=str(tmp_path),
                                STORE_DEFER_INDEXES="true")
        runtime = LocalRuntime(settings)
        store = factory.store(settings)
        seen_while_loading: list[list[str]] = []
        first = sync_local(runtime, ["Property"], full=True,
                           on_records=lambda _n: seen_while_loading.append(missing(store)))
        run = first[0].run
        assert run is not None and run.status == "succeeded"
        assert store.count("Property") == 600
        expected = all_indexes(store)
        assert len(expected) >= 5  # the typed columns' and the version column's
        # Every index was absent while the windows loaded, and every one is there now.
        assert seen_while_loading and all(sorted(m) == expected for m in seen_while_loading)
        assert missing(store) == []
        assert any("first load" in note for note in run.details["notes"])

        sim.mutate("Property", count=20, seed=9)
        seen_while_loading.clear()
        again = sync_local(runtime, ["Property"], full=True,
                           on_records=lambda _n: seen_while_loading.append(missing(store)))
        assert again[0].run.status == "succeeded"
        # A table with rows keeps its indexes, even for a full run.
        assert seen_while_loading and all(m == [] for m in seen_while_loading)
        assert not any("index" in note for note in again[0].run.details["notes"])
    finally:
        sim.stop()


@pytest.mark.parametrize("rows_loaded_before_death", [0, 150])
def test_a_first_load_that_dies_leaves_its_indexes_to_the_next_run(
        tmp_path, rows_loaded_before_death):
    sim = start_simulator(records=300, seed=6)
    url, name = create_database("mariadb", tmp_path)
    try:
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), STORE_DEFER_INDEXES="true")
        runtime = LocalRuntime(settings)
        store, client, lock = runtime.store, runtime.trestle_client(), runtime.run_lock()
        planned = plan_first_load(store, client, lock)
        assert planned.deferred_indexes
        assert sorted(missing(store)) == sorted(planned.deferred_indexes)
        # The planner's windows load some records, then everything dies (no finalize);
        # its lease lapses.
        records = sim.records("Property")[:rows_loaded_before_death]
        if records:
            store.upsert("Property", records)
        lock.release(LockGrant(planned.lock_name, planned.lock_owner, planned.fence))

        after = sync_local(runtime, ["Property"])[0].run
        assert after is not None and after.status == "succeeded"
        assert missing(store) == []
        assert store.count("Property") == 300
        notes = " ".join(after.details["notes"])
        if rows_loaded_before_death:  # not empty: indexes built while planning, not deferred
            assert "a first load left missing" in notes
        else:  # still empty: this run is the first load, deferring and building them
            assert "first load:" in notes
    finally:
        sim.stop()
        store.engine.dispose()
        drop_database("mariadb", name)


def test_by_default_only_wide_records_defer_their_indexes(tmp_path):
    """STORE_DEFER_INDEXES=auto: the simulator's 122-field records keep their indexes
    through a first load; 400 declared fields or more defer them."""
    assert not defers_indexes(None, 122) and defers_indexes(None, WIDE_RECORD_FIELDS)
    assert defers_indexes(True, 10) and not defers_indexes(False, 1000)
    sim = start_simulator(records=300, seed=7)
    url, _ = create_database("sqlite", tmp_path)
    try:
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_PAGE_SIZE="100")
        assert settings.defer_indexes is None  # auto
        store = factory.store(settings)
        seen: list[list[str]] = []
        run = sync_local(LocalRuntime(settings), ["Property"], full=True,
                         on_records=lambda _n: seen.append(missing(store)))[0].run
        assert run.status == "succeeded" and seen and all(m == [] for m in seen)
        assert not any("first load" in note for note in run.details["notes"])
    finally:
        sim.stop()


def test_with_deferral_off_the_indexes_stay_throughout(tmp_path):
    sim = start_simulator(records=300, seed=7)
    url, _ = create_database("sqlite", tmp_path)
    try:
        settings = settings_for(sim, url, STORE_DEFER_INDEXES="false", LOCK_DIR=str(tmp_path),
                                TRESTLE_PAGE_SIZE="100")
        store = factory.store(settings)
        seen: list[list[str]] = []
        run = sync_local(LocalRuntime(settings), ["Property"],
                         on_records=lambda _n: seen.append(missing(store)))[0].run
        assert run.status == "succeeded" and seen and all(m == [] for m in seen)
    finally:
        sim.stop()


def test_a_second_finalize_leaves_the_index_build_to_the_first(tmp_path, monkeypatch):
    sim = start_simulator(records=0, seed=8)
    url, _ = create_database("sqlite", tmp_path)
    try:
        runtime = LocalRuntime(settings_for(sim, url, LOCK_DIR=str(tmp_path)))
        store, client, lock = runtime.store, runtime.trestle_client(), runtime.run_lock()
        planned = plan_first_load(store, client, lock)
        assert planned.deferred_indexes
        building, finish = threading.Event(), threading.Event()
        real_build = store.build_missing_indexes

        def slow_build(resource: str) -> list[str]:
            building.set()
            assert finish.wait(30)
            return real_build(resource)

        monkeypatch.setattr(store, "build_missing_indexes", slow_build)
        closed: list = []
        first = threading.Thread(target=lambda: closed.append(
            finalize_run(planned, [], store=store, lock=lock)))
        first.start()
        assert building.wait(30)
        # The watchdog's next delivery arrives while the first builds: it leaves the run.
        building.clear()
        second = finalize_run(planned, [], store=store, lock=lock)
        assert second is not None and second.status == "running"
        assert not building.is_set()  # it did not start a build of its own
        finish.set()
        first.join(30)
        assert closed and closed[0].status == "succeeded"
        assert missing(store) == []
    finally:
        sim.stop()
