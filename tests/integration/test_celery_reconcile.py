"""Reconcile through real Celery workers, on SQLite, MariaDB and PostgreSQL: records that
arrive below the watermark, and changes that do, reach the store only through the census."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.redis_space import redis_url
from trestle_tasks.core.settings import load_settings
from trestle_tasks.worker import factory

from .conftest import start_simulator
from .drift_fixtures import DAY_TICKS, arrive_below, change_below
from .sync_fixtures import DIALECTS, create_database, drop_database
from .test_celery_sync import assert_equal_to_feed, start_worker, stop, trestle_etl, worker_env

pytestmark = pytest.mark.integration
RESOURCES = ["Property", "OpenHouse", "Media"]


@pytest.fixture
def broker(celery_redis) -> str:
    """The Celery database, empty (tests/redis_space.py)."""
    return redis_url("celery")


def watermark_ticks(env) -> int:
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        return store.sync_log.read_watermark("Property").ticks
    finally:
        store.dispose()
        factory._per_process.clear()


def reconcile_on_workers(env, resource: str) -> dict:
    """Send `trestle.reconcile` to the workers and wait for its result."""
    code = ("import json; from trestle_tasks.worker.tasks import reconcile_task; "
            f"print(json.dumps(reconcile_task.delay({resource!r}).get(timeout=180)))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def fetched_per_resource(stdout: str) -> dict[str, int]:
    rows = {}
    for line in stdout.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] in RESOURCES:
            rows[parts[0]] = int(parts[2].replace(",", ""))
    return rows


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reconcile_on_workers_stores_what_arrived_below_the_watermark(dialect, tmp_path,
                                                                     broker):
    sim = start_simulator(records=300, seed=77)
    url, name = create_database(dialect, tmp_path)
    env = worker_env(sim, url, TRESTLE_RESOURCES=",".join(RESOURCES), REDIS_URL=broker)
    worker = start_worker(env, f"reconcile-{dialect}")
    try:
        first = trestle_etl(env, "sync", "--wait")
        assert first.returncode == 0, first.stdout + first.stderr
        mark = watermark_ticks(env)
        late = sim.keys("Property")[:5]
        change_below(sim, late, mark)  # stamped at the watermark: after it, never
        arrive_below(sim, 40, mark - 30 * DAY_TICKS)

        idle = trestle_etl(env, "sync", "--wait")
        assert idle.returncode == 0, idle.stdout + idle.stderr
        assert set(fetched_per_resource(idle.stdout).values()) == {0}, idle.stdout

        result = reconcile_on_workers(env, "Property")
        assert result["status"] == "succeeded", result
        assert (result["missing"], result["stale"], result["gone"], result["fetched"]) == \
            (40, 5, 0, 45), result
        assert_equal_to_feed(env, sim, RESOURCES)
        again = reconcile_on_workers(env, "Property")
        assert (again["missing"], again["stale"], again["fetched"]) == (0, 0, 0), again
    finally:
        stop(worker)
        sim.stop()
        drop_database(dialect, name)
