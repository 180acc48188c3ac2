"""Chaos during a run: a 429 storm and tokens revoked mid-walk still end equal to the feed."""

from __future__ import annotations

import threading

import pytest

from trestle_tasks.cli.local import sync_local
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for
from .test_sync_local import assert_database_equals_simulator

pytestmark = pytest.mark.integration


def test_a_429_storm_slows_the_run_but_loses_nothing(tmp_path):
    # Retry-After: 1 keeps the test short; without it the limiter waits for the next minute.
    sim = start_simulator(records=600, seed=23, rate_429=0.2, retry_after_on_429=1,
                          fault_seed=4)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_PAGE_SIZE="100",
                                SYNC_WINDOW_SIZE="300")
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert run.status == "succeeded"
        assert sim.stats()["requests"][sim.client_id]["by_status"].get("429", 0) > 0
        assert_database_equals_simulator(settings, sim, ["Property"])
    finally:
        sim.stop()


def test_tokens_revoked_mid_run_are_replaced_and_nothing_is_lost(tmp_path):
    # One window walked by one lane: 16+ pages one after the other, at least 80 ms each,
    # so the run outlives 1.28 s and three revocations however fast the machine is.
    # Revoking more often than a page takes would revoke tokens before their first use,
    # which the client rightly takes for credentials that may not read the service.
    sim = start_simulator(records=800, seed=29, latency_ms_per_request=80)
    stop = threading.Event()
    revoked_live_tokens = []

    def revoke_repeatedly():
        while not stop.wait(0.4):
            revoked = sim.revoke_tokens()
            if revoked:
                revoked_live_tokens.append(revoked)

    revoker = threading.Thread(target=revoke_repeatedly, daemon=True)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_PAGE_SIZE="50",
                                SYNC_WINDOW_SIZE="1000", SYNC_WINDOW_LANES="1")
        revoker.start()
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        stop.set()
        revoker.join(timeout=5)
        assert run.status == "succeeded"
        # Each revocation cost a 401 and a fresh token, never the run.
        rejected = sum(entry["by_status"].get("401", 0)
                       for entry in sim.stats()["requests"].values())
        assert len(revoked_live_tokens) >= 2, "the run should outlive a few revocations"
        assert rejected >= 2
        assert sim.stats()["tokens_issued"] >= 2
        assert_database_equals_simulator(settings, sim, ["Property"])
    finally:
        stop.set()
        sim.stop()
