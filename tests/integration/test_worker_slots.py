"""Workers announce their window slots and runs are cut for the workers really there: real
Redis, real Celery worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis

from tests.redis_space import RUN_PREFIX, redis_url
from trestle_tasks.coordination import worker_slots
from trestle_tasks.core.settings import load_settings
from trestle_tasks.worker.runtime import ClusterRuntime
from trestle_tasks.worker.tasks import cluster_sizing

from .cli_process import clean_env

pytestmark = pytest.mark.integration


def test_slots_add_up_expire_and_are_withdrawn():
    client = redis.Redis.from_url(redis_url("shared"))
    prefix = f"{RUN_PREFIX}slots:"
    try:
        assert worker_slots.live_slots(client, prefix=prefix) == 0
        worker_slots.register(client, "a@host", 3, prefix=prefix)
        worker_slots.register(client, "b@host", 2, prefix=prefix, ttl_s=1)
        assert worker_slots.live_slots(client, prefix=prefix) == 5
        worker_slots.register(client, "a@host", 4, prefix=prefix)  # renewed, not added
        time.sleep(1.5)  # b stopped renewing
        assert worker_slots.live_slots(client, prefix=prefix) == 4
        worker_slots.unregister(client, "a@host", prefix=prefix)
        assert worker_slots.live_slots(client, prefix=prefix) == 0
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


@pytest.mark.parametrize(("allowed", "live", "wanted"),
                         [(8, 4, 4), (8, 0, 8), (2, 6, 2), (1, 1, 1)])
def test_a_run_is_cut_for_the_live_slots_within_the_setting(allowed, live, wanted):
    assert worker_slots.windows_wanted(allowed, live) == wanted


def start_worker(env: dict[str, str], concurrency: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker", "-c",
         str(concurrency), "-n", f"slots-{uuid.uuid4().hex[:6]}@%h", "--without-gossip",
         "--without-mingle", "--loglevel", "WARNING"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def wait_for_slots(client: redis.Redis, expected: int, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        found = worker_slots.live_slots(client)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_workers_announce_their_pools_and_the_planner_cuts_that_many_windows(celery_redis):
    url = redis_url("celery")
    env = clean_env(REDIS_URL=url, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url,
                    DATABASE_URL="sqlite://", TRESTLE_CLIENT_ID="id",
                    TRESTLE_CLIENT_SECRET="secret", SYNC_MAX_CONCURRENT_WINDOWS="8",
                    SYNC_POLL_QUOTA_SHARE="0")
    cluster = ClusterRuntime(load_settings(env, env_file=None))
    # Polling on (the default): one slot is left to the poll ticks.
    polling = ClusterRuntime(load_settings({**env, "SYNC_POLL_QUOTA_SHARE": "0.05"},
                                           env_file=None))
    three, two = start_worker(env, 3), start_worker(env, 2)
    try:
        assert wait_for_slots(celery_redis, 5) == 5
        assert cluster_sizing(cluster).wanted == 5  # not the 8 the setting allows
        assert cluster_sizing(polling).wanted == 4
        assert polling.window_gate().max_slots == 4
        os.killpg(three.pid, signal.SIGTERM)  # a warm shutdown withdraws its slots
        three.wait(timeout=30)
        assert wait_for_slots(celery_redis, 2) == 2
        assert cluster_sizing(cluster).wanted == 2
    finally:
        for worker in (three, two):
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)
