"""End to end without Celery: the simulator over HTTP into real MariaDB, PostgreSQL, SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.redis_space import redis_url
from trestle_tasks.cli.local import sync_local
from trestle_tasks.sync.plan import Skipped, WindowSizing, plan_run
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import (
    DIALECTS,
    canonical,
    create_database,
    fresh_database,
    settings_for,
)

pytestmark = pytest.mark.integration
RESOURCES = ["Property", "Member", "Office", "OpenHouse", "Media"]


@pytest.fixture(params=DIALECTS)
def database_url(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


def assert_database_equals_simulator(settings, sim, resources):
    store = factory.store(settings)
    for resource in resources:
        stored = {canonical(r) for r in store.records(resource)}
        served = {canonical(r) for r in sim.records(resource)}
        assert len(stored) == len(served), resource
        assert stored == served, resource


def test_full_then_incremental_sync_leaves_the_database_equal_to_the_feed(database_url, tmp_path):
    sim = start_simulator(records=1200, seed=21)
    try:
        settings = settings_for(sim, database_url, SYNC_WINDOW_SIZE="400",
                                LOCK_DIR=str(tmp_path))
        first = sync_local(LocalRuntime(settings), RESOURCES)
        assert [r.run.status for r in first] == ["succeeded"] * len(RESOURCES)
        assert_database_equals_simulator(settings, sim, RESOURCES)

        # Incremental efficiency: nothing changed -> only the planning request.
        again = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert again.status == "succeeded"
        assert again.api_requests == 1 and again.records_fetched == 0

        # k changed and added records -> about k records fetched.
        changed = sim.mutate("Property", count=30, seed=3)["modified"]
        sim.upsert("Property", [{"ListingKey": f"NEWKEY{i:03d}"} for i in range(5)])
        third = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert third.status == "succeeded"
        assert third.records_fetched == len(set(changed)) + 5
        assert_database_equals_simulator(settings, sim, ["Property"])
    finally:
        sim.stop()


def test_a_tie_larger_than_a_window_crosses_window_boundaries_whole(tmp_path):
    sim = start_simulator(records=4500, seed=5)  # one mass update of 1,500 records
    try:
        ties = Counter(r["ModificationTimestamp"] for r in sim.records("Property"))
        assert ties.most_common(1)[0][1] == 1500
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, SYNC_WINDOW_SIZE="500", TRESTLE_PAGE_SIZE="200",
                                LOCK_DIR=str(tmp_path))
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert run.status == "succeeded" and run.windows_total > 3
        assert_database_equals_simulator(settings, sim, ["Property"])
    finally:
        sim.stop()


def test_a_second_local_run_of_the_same_resource_is_skipped(tmp_path):
    sim = start_simulator(records=300, seed=2, latency_ms_per_request=150)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), SYNC_WINDOW_SIZE="100",
                                TRESTLE_PAGE_SIZE="50")
        sync_local(LocalRuntime(settings), ["Office"])  # tables first
        results = []
        threads = [threading.Thread(target=lambda: results.extend(
            sync_local(LocalRuntime(settings), ["Property"]))) for _ in range(2)]
        threads[0].start()
        # The second starts once the first holds the lock (its walk then takes a second or
        # more at 150 ms a page), so the two overlap whatever the machine's speed.
        lock, deadline = factory.run_lock(settings), time.monotonic() + 30
        while lock.holder("Property") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        threads[1].start()
        for thread in threads:
            thread.join()
        skipped = [r for r in results if r.skipped is not None]
        ran = [r for r in results if r.run is not None]
        assert len(ran) == 1 and len(skipped) == 1
        assert "already being synced" in skipped[0].skipped.reason
        logged = {r.run_id: r for r in factory.store(settings).sync_log.recent_runs(
            resource="Property")}
        assert logged[skipped[0].skipped.run_id].status == "skipped"
        assert "already being synced" in logged[skipped[0].skipped.run_id].error
        assert logged[ran[0].run.run_id].status == "succeeded"
    finally:
        sim.stop()


def test_concurrent_triggers_with_the_database_lock_make_exactly_one_run(database_url,
                                                                         tmp_path):
    """Execution lock: any number of concurrent triggers -> one run, on each
    database (the lock is a row in it)."""
    sim = start_simulator(records=200, seed=9)
    try:
        settings = settings_for(sim, database_url, LOCK_DIR=str(tmp_path))
        sync_local(LocalRuntime(settings), ["Property"], full=True)
        lock = factory.run_lock(settings)
        store = factory.store(settings)
        barrier = threading.Barrier(8)
        outcomes = []

        def trigger():
            client = LocalRuntime(settings).trestle_client()
            barrier.wait()
            outcomes.append(plan_run("Property", store=store, client=client, lock=lock,
                                     lock_ttl_s=60,
                                     sizing=WindowSizing(max_records=1000)))

        threads = [threading.Thread(target=trigger) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        plans = [o for o in outcomes if not isinstance(o, Skipped)]
        assert len(plans) == 1 and len(outcomes) == 8
        statuses = Counter(r.status for r in store.sync_log.recent_runs(resource="Property"))
        assert statuses["skipped"] == 7 and statuses["running"] == 1
        assert lock.holder("Property").fence == plans[0].fence
    finally:
        sim.stop()


def test_changed_photo_sets_are_replaced_with_removed_photos_marked(database_url, tmp_path):
    sim = start_simulator(records=300, seed=44)
    try:
        settings = settings_for(sim, database_url, LOCK_DIR=str(tmp_path))
        sync_local(LocalRuntime(settings), ["Property", "Media"])
        sim.mutate("Property", count=90, seed=5)  # about a third get a new photo set
        # Property alone, Media untouched
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        windows = run.details["windows"]
        refreshed = sum(w["media_listings"] for w in windows)
        removed = sum(w["media_removed"] for w in windows)
        assert refreshed > 0 and removed > 0
        assert sum(w["media_incomplete"] for w in windows) == 0
        assert_database_equals_simulator(settings, sim, ["Media"])
    finally:
        sim.stop()


def test_a_photo_set_answered_short_is_kept(tmp_path):
    sim = start_simulator(records=200, seed=45)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path))
        sync_local(LocalRuntime(settings), ["Property", "Media"])
        before = {r["MediaKey"] for r in factory.store(settings).records("Media")}
        sim.mutate("Property", count=60, seed=6)
        changed = {r["ListingKey"] for r in sim.records("Property")}
        # Every Media answer now comes back empty, as Trestle has done under quota pressure.
        for record in sim.records("Media"):
            sim.delete("Media", record["MediaKey"])
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        windows = run.details["windows"]
        assert sum(w["media_incomplete"] for w in windows) > 0
        assert sum(w["media_removed"] for w in windows) == 0
        assert {r["MediaKey"] for r in factory.store(settings).records("Media")} == before
        assert changed
    finally:
        sim.stop()


def test_status_counts_exactly_the_requests_the_simulator_served(tmp_path):
    """Cost tracking accuracy: counted requests equal the requests served."""
    from trestle_tasks.cli.status import collect_status, render_status

    sim = start_simulator(records=600, seed=13, rate_5xx=0.05, rate_429=0.05, fault_seed=2)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), SYNC_WINDOW_SIZE="200",
                                TRESTLE_PAGE_SIZE="100", COST_PER_REQUEST="0.01",
                                COST_PER_GB="50",
                                REDIS_URL=redis_url())
        sync_local(LocalRuntime(settings), ["Property", "Office"])
        served = sim.stats()["requests"][sim.client_id]
        # The $metadata reads that created the tables are not part of any run.
        metadata_reads = served["by_resource"].get("$metadata", 0)
        report = collect_status(ClusterRuntime(settings))
        assert report["usage"]["last_hour"] == served["total"] - metadata_reads
        use = report["usage"]
        # Bytes as sent: 600 wide records arrive gzipped, well over 100 KB and under 100 MB.
        assert 100 / 1024 / 1024 < use["gigabytes_last_day"] < 0.1
        assert use["estimated_cost_last_day"] == pytest.approx(
            0.01 * use["last_day"] + 50 * use["gigabytes_last_day"], rel=1e-3)
        text = render_status(report)
        # 429s per run, as the simulator served them (the run-level column)
        served_429 = sum(r["api_rate_limited"] for r in report["runs"])
        assert served_429 == served["by_status"].get("429", 0)
        assert " 429s " in text
        assert f"{report['usage']['last_hour']:,} in the last hour" in text
        assert sim.client_secret not in text
    finally:
        sim.stop()


def test_big_windows_walk_the_replication_endpoint_and_lose_nothing(tmp_path):
    sim = start_simulator(records=1200, seed=33)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), SYNC_WINDOW_SIZE="500",
                                TRESTLE_PAGE_SIZE="100", SYNC_REPLICATION_MIN_RECORDS="300")
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert run.status == "succeeded" and run.windows_total >= 2
        assert run.records_fetched == 1200  # exactly once
        served = sim.stats()["requests"][sim.client_id]["by_resource"]
        assert any("replication" in name for name in served), served
        assert_database_equals_simulator(settings, sim, ["Property"])
    finally:
        sim.stop()


def test_status_feed_counts_the_records_waiting_past_each_watermark(tmp_path):
    sim = start_simulator(records=300, seed=37)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path))
        sync_local(LocalRuntime(settings), ["Property", "Office"])
        sim.mutate("Property", count=7, seed=2)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_"))}
        env.update(TRESTLE_CLIENT_ID=sim.client_id, TRESTLE_CLIENT_SECRET=sim.client_secret,
                   TRESTLE_TOKEN_URL=sim.token_url, TRESTLE_BASE_URL=sim.odata_root,
                   DATABASE_URL=url, TRESTLE_RESOURCES="Property,Office",
                   REDIS_URL="redis://127.0.0.1:1/0")
        shown = subprocess.run([sys.executable, "-m", "trestle_tasks", "status", "--live",
                                "--json"], env=env, capture_output=True, text=True,
                               timeout=120, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        assert report["behind_feed"] == {"Property": 7, "Office": 0}
        # `status --feed`, as scripts wrote it before feeds had names, still asks the feed.
        former = subprocess.run([sys.executable, "-m", "trestle_tasks", "status", "--feed"],
                                env=env, capture_output=True, text=True, timeout=120,
                                cwd=tmp_path)
        text = former.stdout
        assert "7 records behind the feed" in text
        assert "now `status --live`" in former.stderr
        assert sim.client_secret not in shown.stdout + text
    finally:
        sim.stop()


def test_settled_changes_wait_for_the_next_run_and_none_is_lost(tmp_path):
    sim = start_simulator(records=200, seed=53)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), SYNC_SETTLE_SECONDS="1.5")
        sync_local(LocalRuntime(settings), ["Property"], full=True)
        time.sleep(1.6)  # everything the full load saw is older than the settle time now
        changed = set(sim.mutate("Property", count=9, seed=4)["modified"])
        early = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert early.status == "succeeded" and early.records_fetched == 0  # too fresh
        time.sleep(1.6)
        later = sync_local(LocalRuntime(settings), ["Property"])[0].run
        assert later.records_fetched == len(changed) == 9
        assert_database_equals_simulator(settings, sim, ["Property"])
    finally:
        sim.stop()


def test_a_killed_local_run_frees_its_resource_within_a_minute(tmp_path):
    """A cron `sync --local` killed mid-run (SIGKILL: nothing runs after it) holds a lease
    of a minute at most, not SYNC_LOCK_TTL: the next cron run is not locked out for long."""
    from .cli_process import clean_env

    sim = start_simulator(records=3000, seed=8, latency_ms_per_request=400)
    url, _ = create_database("sqlite", tmp_path)
    env = clean_env(TRESTLE_CLIENT_ID=sim.client_id, TRESTLE_CLIENT_SECRET=sim.client_secret,
                    TRESTLE_TOKEN_URL=sim.token_url, TRESTLE_BASE_URL=sim.odata_root,
                    DATABASE_URL=url, TRESTLE_RESOURCES="Property", TRESTLE_PAGE_SIZE="100",
                    SYNC_LOCK_TTL="900", LOCK_DIR=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-m", "trestle_tasks", "sync", "--local"],
                               env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    settings = settings_for(sim, url)
    try:
        lock = factory.run_lock(settings)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lock.holder("Property") is None:
            time.sleep(0.2)
        held = lock.holder("Property")
        assert held is not None, "the local run never took its lock"
        process.kill()
        process.wait(timeout=10)
        still = lock.holder("Property")
        assert still is not None and still.ttl_s is not None
        assert still.ttl_s <= 60  # freed within a minute, not 900 s
    finally:
        if process.poll() is None:
            process.kill()
        sim.stop()
