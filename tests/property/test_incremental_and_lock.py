"""Incremental efficiency and the execution lock against the simulator over HTTP, SQLite
and the database run lock.

Incremental efficiency: after a full sync, an incremental run with no changes
makes only its planning-sized request; with k changed records it fetches exactly those k.
Execution lock: any number of concurrent triggers lead to exactly one run,
and every other trigger is recorded as skipped.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import start_simulator
from tests.integration.sync_fixtures import canonical, create_database, settings_for
from trestle_tasks.cli.local import sync_local
from trestle_tasks.coordination.locks import LockGrant
from trestle_tasks.sync.plan import Skipped, WindowSizing, plan_run
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

pytestmark = pytest.mark.integration
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def synced():
    sim = start_simulator(records=400, seed=113)
    folder = Path(tempfile.mkdtemp(prefix="p13-"))
    url, _ = create_database("sqlite", folder)
    config = settings_for(sim, url, LOCK_DIR=str(folder), TRESTLE_PAGE_SIZE="100",
                          SYNC_WINDOW_SIZE="1000")
    assert sync_local(LocalRuntime(config), ["Property"])[0].run.status == "succeeded"
    yield sim, config
    sim.stop()


@settings(max_examples=10, suppress_health_check=FIXTURE_OK)
@given(changed=st.integers(0, 60), seed=st.integers(0, 10_000))
def test_an_incremental_run_fetches_exactly_what_changed(synced, changed, seed):
    sim, config = synced
    modified = set(sim.mutate("Property", count=changed, seed=seed)["modified"])
    run = sync_local(LocalRuntime(config), ["Property"])[0].run
    assert run.status == "succeeded"
    assert run.records_fetched == len(modified) == changed
    # 100 a page: the pages those records fill (a full last page is followed by an empty
    # one), and nothing else; with no change at all, that is the one planning-sized request.
    assert run.api_requests == changed // 100 + 1
    stored = {canonical(r) for r in factory.store(config).records("Property")}
    assert stored == {canonical(r) for r in sim.records("Property")}


@settings(max_examples=8, suppress_health_check=FIXTURE_OK)
@given(triggers=st.integers(2, 12))
def test_any_number_of_concurrent_triggers_make_exactly_one_run(synced, triggers):
    _, config = synced
    lock = factory.run_lock(config)
    store = factory.store(config)
    barrier = threading.Barrier(triggers)
    outcomes = []

    def trigger() -> None:
        trestle = LocalRuntime(config).trestle_client()
        barrier.wait()
        outcomes.append(plan_run("Property", store=store, client=trestle, lock=lock,
                                 lock_ttl_s=60,
                                 sizing=WindowSizing(max_records=1000)))

    threads = [threading.Thread(target=trigger) for _ in range(triggers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plans = [o for o in outcomes if not isinstance(o, Skipped)]
    skipped = [o for o in outcomes if isinstance(o, Skipped)]
    assert len(outcomes) == triggers and len(plans) == 1
    logged = {r.run_id: r.status for r in store.sync_log.recent_runs(limit=50,
                                                                     resource="Property")}
    assert all(logged[s.run_id] == "skipped" for s in skipped)
    plan = plans[0]
    store.sync_log.close_run(plan.run_id, "Property", status="abandoned")
    assert lock.release(LockGrant(plan.lock_name, plan.lock_owner, plan.fence))
