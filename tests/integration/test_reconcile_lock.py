"""Reconcile under its run lock: one that lost the lock during its census (a pause longer
than its lease; a sync may hold the lock now) repairs and deletes nothing, and fails."""

from __future__ import annotations

import pytest

from trestle_tasks.core.errors import LockLostError
from trestle_tasks.sync.reconcile import reconcile
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for

pytestmark = pytest.mark.integration


class LapsingLock:
    """The real run lock, whose lease lapses once the census has begun (renew says no)."""

    def __init__(self, lock):
        self._lock, self.lapsed = lock, False

    def __getattr__(self, name):
        return getattr(self._lock, name)

    def renew(self, grant, ttl_s):
        return not self.lapsed and self._lock.renew(grant, ttl_s)


def test_a_reconcile_that_lost_its_lock_changes_nothing(tmp_path):
    sim = start_simulator(records=60, seed=5)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, TRESTLE_RETRY_BUDGET="0")
        store = factory.store(settings)
        client = LocalRuntime(settings).trestle_client()
        ensure_tables(store, client, ["Property"])
        store.upsert("Property", sim.records("Property"))
        gone = sim.keys("Property")[:5]
        for key in gone:
            sim.delete("Property", key)
        lock = LapsingLock(factory.run_lock(settings))

        def lapse(records: int) -> None:
            lock.lapsed = True

        with pytest.raises(LockLostError, match="was lost"):
            reconcile("Property", store=store, client=client, lock=lock, lock_ttl_s=60,
                      on_census=lapse)
        assert not list(store.deleted_keys("Property"))  # the five are still live
        assert set(gone) <= set(store.stored_keys("Property"))
        run = store.sync_log.recent_runs(limit=1, resource="Property")[0]
        assert run.status == "failed" and "was lost" in (run.error or "")
    finally:
        sim.stop()
