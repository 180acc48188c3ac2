"""Issue 22, item 7, through a whole reconcile against the simulator over HTTP: a record
whose ModificationTimestamp is past year 9999 in UTC is one version the census cannot
read, not a failed census. Before: every reconcile of the resource failed at the census
(OverflowError), so its drift was never repaired. (The simulator serves
`0000-00-00T00:00:00Z` as null; test_poison_records.py serves it from a hostile server.)"""

from __future__ import annotations

from typing import Any

import pytest

from trestle_tasks.cli.local import sync_local
from trestle_tasks.sync.reconcile import reconcile
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for

pytestmark = pytest.mark.integration


def stored_version(store: Any, key: str) -> Any:
    return dict((k, t) for k, t, _deleted in store.stored_versions("Property"))[key]


def test_a_poison_timestamp_in_the_census_is_one_unknown_version_and_the_rest_repaired(
        tmp_path: Any) -> None:
    poison = "9999-12-31T23:59:59.9999999-01:00"
    sim = start_simulator(records=60, seed=5)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0")
        sync_local(LocalRuntime(settings), ["Property"])
        store = factory.store(settings)
        keys = sim.keys("Property")
        lost, poisoned = keys[3], keys[10]
        store.mark_deleted("Property", [lost])  # drift the reconcile must repair
        before = stored_version(store, poisoned)
        sim.upsert("Property", [{"ListingKey": poisoned, "ModificationTimestamp": poison}])
        run = reconcile("Property", store=store,
                        client=LocalRuntime(settings).trestle_client(),
                        lock=factory.run_lock(settings), lock_ttl_s=60,
                        synced_resources=settings.resources)
        assert run.status == "succeeded", run.error
        assert lost in set(store.stored_keys("Property"))
        # The unreadable version counts as unknown: the stored copy is kept as it was
        # (counted newer in store), never overwritten by a version that cannot be stored.
        assert run.details["census"] == 60 and run.details["newer_in_store"] == 1
        assert before == stored_version(store, poisoned)
    finally:
        sim.stop()
