"""A reconcile takes a window slot, so windows and reconciles together always leave one
worker process to the polls: with every slot taken it waits (sent again later, nothing
written), and with one free it runs in it and frees it at its end."""

from __future__ import annotations

import pytest

from tests.redis_space import redis_url
from trestle_tasks.cli.local import sync_local
from trestle_tasks.coordination.concurrency import RedisWindowGate
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime, cluster_runtime, forget_cluster_runtime

from .conftest import start_simulator
from .sync_fixtures import create_database, drop_database, settings_for

pytestmark = pytest.mark.integration


def test_a_reconcile_waits_for_a_free_slot_and_frees_the_one_it_took(tmp_path, monkeypatch):
    from trestle_tasks.worker import tasks

    url, name = create_database("sqlite", tmp_path)
    sim = start_simulator(records=50, seed=3)
    monkeypatch.chdir(tmp_path)  # no stray .env
    environ = {"TRESTLE_CLIENT_ID": sim.client_id, "TRESTLE_CLIENT_SECRET": sim.client_secret,
               "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
               "DATABASE_URL": url, "REDIS_URL": redis_url(), "TRESTLE_RESOURCES": "Office",
               "LOCK_DIR": str(tmp_path)}
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.reconcile_task, "apply_async",
                        lambda *args, **kwargs: sent.append((args, kwargs)))
    try:
        sync_local(LocalRuntime(settings_for(sim, url, LOCK_DIR=str(tmp_path))), ["Office"])
        forget_cluster_runtime()  # a worker reads its settings once: this test's, from here
        runtime = cluster_runtime()
        gate: RedisWindowGate = runtime.window_gate()
        windows = [f"window-{i}" for i in range(gate.max_slots)]
        assert all(gate.acquire(holder, 60) for holder in windows)
        rows_before = len(runtime.store.sync_log.recent_runs(limit=100))

        waiting = tasks.reconcile_task.run("Office")

        assert waiting["status"] == "waiting for a slot"
        assert sent == [((("Office",), {"dry_run": False, "feed": "default"}),
                         {"countdown": tasks.RECONCILE_SLOT_WAIT_S})]
        assert len(runtime.store.sync_log.recent_runs(limit=100)) == rows_before
        assert gate.holders() == gate.max_slots

        gate.release(windows[0])
        done = tasks.reconcile_task.run("Office")
        assert done["status"] == "succeeded"
        assert gate.holders() == gate.max_slots - 1  # its own slot freed again
    finally:
        for holder in [f"window-{i}" for i in range(16)]:
            cluster_runtime().window_gate().release(holder)
        forget_cluster_runtime()
        sim.stop()
        for key, value in list(factory._per_process.items()):
            if key[1] == f"store:{url}":
                value.dispose()
                factory._per_process.pop(key, None)
        drop_database("sqlite", name)
