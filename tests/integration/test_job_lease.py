"""A job without a run lock (the metadata refresh) leaves a mark the watchdog acts on only
when its process was killed mid-job: a finished or failed job leaves nothing, a live one
renews its lease, a killed one is taken once (two watchdogs send it once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.redis_space import redis_url
from trestle_tasks.coordination.job_lease import PREFIX, JobLease, take_orphaned

pytestmark = pytest.mark.integration


@pytest.fixture
def job(redis_client):
    name = f"test-{uuid.uuid4().hex}"
    yield name
    redis_client.delete(f"{PREFIX}{name}:due", f"{PREFIX}{name}:lease")


def test_a_finished_or_failed_job_leaves_nothing(redis_client, job):
    with JobLease(redis_client, job, lease_s=0.3):
        assert not take_orphaned(redis_client, job)  # running
    time.sleep(0.4)
    assert not take_orphaned(redis_client, job)
    with pytest.raises(RuntimeError), JobLease(redis_client, job, lease_s=0.3):
        raise RuntimeError("the refresh failed: reported, not re-sent every half minute")
    time.sleep(0.4)
    assert not take_orphaned(redis_client, job)


def test_a_live_job_keeps_its_lease_past_its_length(redis_client, job):
    with JobLease(redis_client, job, lease_s=0.3):
        time.sleep(1.0)
        assert not take_orphaned(redis_client, job)


def test_a_killed_job_is_taken_once(redis_client, job):
    # A real process holding the lease, killed with SIGKILL: nothing of it runs after.
    code = (f"import time, redis; from trestle_tasks.coordination.job_lease import JobLease\n"
            f"with JobLease(redis.Redis.from_url({redis_url()!r}), {job!r}, lease_s=0.5):\n"
            f"    print('started', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "started"
        time.sleep(0.7)
        assert not take_orphaned(redis_client, job)  # renewed: alive
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        time.sleep(0.7)  # the lease lapses
        assert take_orphaned(redis_client, job)
        assert not take_orphaned(redis_client, job)  # the second watchdog sends nothing
    finally:
        if holder.poll() is None:
            holder.kill()
