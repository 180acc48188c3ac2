"""Polling as deployed: a Celery worker and beat with default settings keep the database
within seconds of the feed, and a delta too large for the fast path becomes a run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from trestle_tasks.core.settings import load_settings
from trestle_tasks.worker import factory

from .conftest import start_simulator
from .sync_fixtures import canonical, create_database, drop_database
from .test_celery_sync import start_worker, stop, trestle_etl, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(celery_redis, tmp_path):
    """A synced feed (every resource has a watermark), a worker and beat, all defaults."""
    url, name = create_database("mariadb", tmp_path)
    sim = start_simulator(records=800, seed=8, minute_quota=280, hour_quota=8400)
    env = worker_env(sim, url, TRESTLE_RESOURCES="Property,Office")
    first = trestle_etl(env, "sync", "--local")
    assert first.returncode == 0, first.stderr
    worker = start_worker(env, "poller")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "beat",
         "-s", str(tmp_path / "beat-schedule"), "--loglevel", "INFO"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        yield sim, store
    finally:
        stop(beat)
        stop(worker)
        sim.stop()
        store.dispose()
        factory._per_process.clear()
        drop_database("mariadb", name)


def wait_until_equal(sim, store, resource: str, timeout_s: float) -> float:
    """Seconds until the stored records equal the feed's; fails after `timeout_s`."""
    started = time.monotonic()
    while True:
        if {canonical(r) for r in store.records(resource)} == \
                {canonical(r) for r in sim.records(resource)}:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"{resource} not equal to the feed"
        time.sleep(0.5)


def test_changes_reach_the_database_within_seconds_and_large_ones_become_a_run(deployment):
    sim, store = deployment
    # The first ticks poll every resource once (each is due at once).
    sim.mutate("Property", count=3, seed=1)
    wait_until_equal(sim, store, "Property", timeout_s=90)

    sim.mutate("Property", count=2, seed=2)
    seconds = wait_until_equal(sim, store, "Property", timeout_s=60)
    # The fastest interval at 5 % of 8,400/h is about 10 s, plus a tick and a round trip.
    assert seconds < 20

    polls = [r for r in store.sync_log.recent_runs(limit=50) if r.run_id.startswith("poll-")]
    property_polls = [r for r in polls if r.resource == "Property"]
    assert len(property_polls) == 1, [r.run_id for r in polls]  # one row for the hour
    assert property_polls[0].records_fetched >= 5
    assert (property_polls[0].details or {}).get("changed", 0) >= 2

    # More than three pages of 200 changed: the poll stores what it fetched and starts a
    # regular run for the rest, which ends with the copy equal to the feed.
    def runs():
        return {r.run_id: r for r in store.sync_log.recent_runs(limit=50, resource="Property")
                if not r.run_id.startswith("poll-")}

    before = set(runs())
    sim.mutate("Property", count=700, seed=3)
    wait_until_equal(sim, store, "Property", timeout_s=120)
    started = [r for run_id, r in runs().items() if run_id not in before]
    assert [r.status for r in started] == ["succeeded"], started
    assert started[0].records_fetched >= 100  # the rest, past what the poll stored
