"""The real thing: Celery worker processes, Redis, MariaDB and the simulator over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.redis_space import redis_url
from trestle_tasks.core.settings import load_settings
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime

from .conftest import start_simulator
from .sync_fixtures import canonical, create_database, drop_database

pytestmark = pytest.mark.integration


def worker_env(sim, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "CELERY_", "SYNC_"))}
    env.update({
        "TRESTLE_CLIENT_ID": sim.client_id,
        "TRESTLE_CLIENT_SECRET": sim.client_secret,
        "TRESTLE_TOKEN_URL": sim.token_url,
        "TRESTLE_BASE_URL": sim.odata_root,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url("celery"),
        "TRESTLE_RESOURCES": "Property,Member,Office",
        "LOG_FORMAT": "json",
        **extra,
    })
    return env


def start_worker(env: dict[str, str], name: str, concurrency: int = 2) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker",
         "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
         "--loglevel", "INFO"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def trestle_etl(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "trestle_tasks", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def clean_redis(celery_redis):
    """The Celery database, empty (tests/redis_space.py): broker, results, locks, limiter."""
    return celery_redis


RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUES = ("planning", "windows", "maintenance")


def purge_rabbitmq(url: str) -> None:
    """Drop whatever an earlier run left in the queues (a killed test, say)."""
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        for queue in QUEUES:
            try:
                channel.queue_purge(queue)
            except Exception:  # not declared yet: nothing to drop
                channel = conn.channel()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request, clean_redis) -> dict[str, str]:
    """Extra environment for the broker under test: Redis (the default, REDIS_URL), or
    RabbitMQ with Redis still the result backend, locks and limiter. Celery tests run one
    at a time (flock in scripts/test), so the default vhost is this test's alone."""
    if request.param == "redis":
        yield {}
        return
    purge_rabbitmq(RABBITMQ_URL)
    yield {"CELERY_BROKER_URL": RABBITMQ_URL,
           "CELERY_RESULT_BACKEND": redis_url("celery")}
    purge_rabbitmq(RABBITMQ_URL)


@pytest.fixture
def mariadb_url(tmp_path):
    url, name = create_database("mariadb", tmp_path)
    yield url
    drop_database("mariadb", name)


def assert_equal_to_feed(env, sim, resources):
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        for resource in resources:
            stored = {canonical(r) for r in store.records(resource)}
            assert stored == {canonical(r) for r in sim.records(resource)}, resource
    finally:
        store.dispose()
        factory._per_process.clear()


def run_status(env, run_id: str) -> str | None:
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        run = store.sync_log.get_run(run_id, "Property")
        return run.status if run else None
    finally:
        store.dispose()
        factory._per_process.clear()


def wait_for_a_running_window(env, run_id: str, timeout_s: float = 90) -> None:
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if any(w.status == "running" for w in store.sync_log.windows(run_id, "Property")):
                    return
            except Exception:  # tables not created yet
                pass
            time.sleep(0.3)
        raise AssertionError(f"no window of run {run_id} started within {timeout_s} s")
    finally:
        store.dispose()
        factory._per_process.clear()


def test_sync_wait_through_two_workers(broker, mariadb_url):
    sim = start_simulator(records=1500, seed=31, minute_quota=600)
    env = worker_env(sim, mariadb_url, SYNC_WINDOW_SIZE="300", **broker)
    workers = [start_worker(env, f"w{i}-{uuid.uuid4().hex[:6]}") for i in range(2)]
    try:
        result = trestle_etl(env, "sync", "--wait", "--timeout", "180")
        assert result.returncode == 0, result.stderr + result.stdout
        assert "succeeded" in result.stdout and "Property" in result.stdout
        assert_equal_to_feed(env, sim, ["Property", "Member", "Office"])
        counts = sim.stats()["requests"][sim.client_id]
        served = counts["total"]
        # Two workers share one quota through the limiter: no 429s.
        assert counts["by_status"].get("429", 0) == 0
        status = trestle_etl(env, "status", "--json")
        assert status.returncode == 0
        assert '"api_requests"' in status.stdout
        assert sim.client_secret not in status.stdout + result.stdout + result.stderr
        assert served > 0
        # Across workers too, every record is fetched exactly once, whichever worker
        # walked its window.
        settings = load_settings(env, env_file=None)
        store = factory.store(settings)
        try:
            for resource in ("Property", "Member", "Office"):
                run = store.sync_log.recent_runs(limit=1, resource=resource)[0]
                assert run.records_fetched == len(sim.records(resource)), resource
        finally:
            store.dispose()
            factory._per_process.clear()
        # Quota headers across workers: the shared limiter holds what the server last said.
        quota = ClusterRuntime(settings).quota_limiter().state()
        factory._per_process.clear()
        assert float(quota["minute_limit"]) == 600
        assert 0 <= float(quota["minute_available"]) <= 600

        # The second run: only what changed.
        sim.mutate("Property", count=12, seed=4)
        again = trestle_etl(env, "sync", "--wait", "--resource", "Property", "--timeout", "120")
        assert again.returncode == 0, again.stderr
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        for worker in workers:
            stop(worker)
        sim.stop()


def start_beat(env, folder, name: str = "beat") -> subprocess.Popen:
    """Beat as deployed: its watchdog every 30 s. Syncs are triggered by hand here, so the
    sync interval is set far out of the test's way."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "beat", "--loglevel", "INFO",
         "--schedule", str(folder / f"{name}-schedule"), "--pidfile", ""],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def ledger_rows(env, run_id: str):
    from trestle_tasks.sync.ledger import WindowLedger

    return with_store(env, lambda s: WindowLedger(s.engine, schema=s.schema)
                      .windows(run_id, "Property"))


def sync_wait_in_background(env, timeout_s: float = 400) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trestle_tasks", "sync", "--wait",
                             "--timeout", str(timeout_s)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def dispatched_run_id(waiting: subprocess.Popen, timeout_s: float = 30) -> str:
    """The run id `sync --wait` prints first ("run … dispatched; waiting …")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = waiting.stderr.readline()
        if line.startswith("run "):
            return line.split()[1]
        assert line or waiting.poll() is None, "sync --wait exited before dispatching"
    raise AssertionError("sync --wait never said which run it dispatched")


def test_a_worker_killed_mid_window_loses_nothing(clean_redis, mariadb_url, tmp_path):
    """kill -9 of a whole worker mid-window, with beat running as deployed: the window is
    handed to the surviving worker (the watchdog sees its heartbeat stop), the same run
    finishes within 3 minutes of the kill, `sync --wait` follows it to the end, the
    database ends equal to the feed, and every record is counted once. On Redis: the
    chaos property (test_chaos_phases.py) kills a window's worker on RabbitMQ in CI."""
    broker: dict[str, str] = {}
    sim = start_simulator(records=2000, seed=17, minute_quota=None,
                          latency_ms_per_request=300)
    # The shortest window staleness (10 s, not 40): the watchdog hands the dead worker's
    # window out again 30 s sooner; the same recovery, in half the test's time.
    # Pages of 50: a window is 10 pages (about 1.2 s over its lanes at 300 ms a request),
    # so the kill 1 s into it still finds it walking on a fast worker (with pages of 100 a
    # window could end first, and no crash was there to count).
    env = worker_env(sim, mariadb_url, SYNC_WINDOW_SIZE="500", TRESTLE_PAGE_SIZE="50",
                     TRESTLE_RESOURCES="Property", SYNC_INTERVAL_MINUTES="600",
                     SYNC_WINDOW_STALE_SECONDS="10", **broker)
    victim = start_worker(env, f"victim-{uuid.uuid4().hex[:6]}", concurrency=1)
    beat = start_beat(env, tmp_path)
    survivor = waiting = None
    try:
        waiting = sync_wait_in_background(env)
        run_id = dispatched_run_id(waiting)
        wait_for_a_running_window(env, run_id)
        time.sleep(1)  # a page or two into it
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(timeout=10)
        survivor = start_worker(env, f"survivor-{uuid.uuid4().hex[:6]}", concurrency=2)

        out, err = waiting.communicate(timeout=240)
        recovered_s = time.monotonic() - killed_at
        assert waiting.returncode == 0, out + err
        assert run_status(env, run_id) == "succeeded", out + err  # the same run, not a retry
        assert recovered_s < 180, recovered_s
        print(f"\n{broker.get('CELERY_BROKER_URL', 'redis')}: the killed run finished "
              f"{recovered_s:.0f} s after the kill")
        rows = ledger_rows(env, run_id)
        assert sum(r.crashes for r in rows) == 1, [(r.window, r.crashes) for r in rows]
        assert_equal_to_feed(env, sim, ["Property"])
        # Every record applied once per delivery that owned its window: the run's count is
        # the feed plus at most the killed window's partial walk.
        run = with_store(env, lambda s: s.sync_log.get_run(run_id, "Property"))
        assert run.records_fetched == 2000, run.records_fetched
    finally:
        for process in (victim, beat, survivor):
            if process is not None:
                stop(process)
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
        sim.stop()


def test_flower_shows_the_run_and_never_a_secret(clean_redis, tmp_path):
    """Flower against the real Redis and a real worker: tasks, states, safe arguments."""
    import requests

    sim = start_simulator(records=300, seed=8)
    url, _ = create_database("sqlite", tmp_path)
    env = worker_env(sim, url, TRESTLE_RESOURCES="Property")
    port = 15000 + int(uuid.uuid4().hex[:3], 16)
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "flower",
         f"--port={port}", "--address=127.0.0.1"],
        env={**env, "FLOWER_UNAUTHENTICATED_API": "true"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    worker = start_worker(env, f"flower-{uuid.uuid4().hex[:6]}", concurrency=1)
    try:
        time.sleep(4)
        result = trestle_etl(env, "sync", "--wait", "--timeout", "120")
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 30
        names: dict[str, set[str]] = {}
        tasks: dict = {}
        while time.monotonic() < deadline:
            try:
                tasks = requests.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).json()
            except requests.RequestException:
                tasks = {}
            names = {}
            for task in tasks.values():
                names.setdefault(task.get("name"), set()).add(task.get("state"))
            if names.get("trestle.finalize_sync") == {"SUCCESS"}:
                break
            time.sleep(1)
        for name in ("trestle.plan_sync", "trestle.sync_window", "trestle.finalize_sync"):
            assert names.get(name) == {"SUCCESS"}, (name, names)
        shown = str(tasks)
        assert "Property" in shown
        assert sim.client_secret not in shown
    finally:
        stop(worker)
        stop(flower)
        sim.stop()


def with_store(env, read):
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        return read(store)
    finally:
        store.dispose()
        factory._per_process.clear()


def lock_owner(env) -> str | None:
    from trestle_tasks.coordination.locks import lock_name

    def read(store):
        holder = factory.run_lock(load_settings(env, env_file=None)).holder(
            lock_name("Property"))
        return holder.owner if holder else None

    return with_store(env, read)


def wait_until(condition, timeout_s: float = 60, what: str = "a condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


def set_watermark_fence(env, fence: int) -> None:
    import sqlalchemy as sa

    from trestle_tasks.store.schema import bookkeeping

    def write(store):
        marks = bookkeeping(store.schema)["etl_watermark"]
        with store.engine.begin() as conn:
            conn.execute(sa.update(marks).values(fence=fence))

    with_store(env, write)


def test_sync_local_and_the_workers_take_turns_on_one_database(clean_redis, mariadb_url):
    """Issue 10: after a `sync --local` (fenced by the old file lock's time_ns, even) the
    workers still advance the watermark; and while either mode runs a resource, the other
    is skipped (exit 3) instead of syncing it at the same time."""
    sim = start_simulator(records=600, seed=23, minute_quota=None)
    env = worker_env(sim, mariadb_url, TRESTLE_RESOURCES="Property", SYNC_WINDOW_SIZE="300",
                     TRESTLE_PAGE_SIZE="100")
    worker = start_worker(env, f"turns-{uuid.uuid4().hex[:6]}")
    try:
        local = trestle_etl(env, "sync", "--local")
        assert local.returncode == 0, local.stdout + local.stderr
        set_watermark_fence(env, time.time_ns())  # what the old `sync --local` left
        before = with_store(env, lambda s: s.sync_log.read_watermark("Property"))
        sim.mutate("Property", count=20, seed=1)
        celery = trestle_etl(env, "sync", "--wait", "--timeout", "120")
        assert celery.returncode == 0, celery.stdout + celery.stderr
        run = with_store(env, lambda s: s.sync_log.recent_runs(limit=1, resource="Property")[0])
        assert run.status == "succeeded" and run.details["watermark_advanced"] is True
        assert with_store(env, lambda s: s.sync_log.read_watermark("Property")) > before
        assert_equal_to_feed(env, sim, ["Property"])

        # A Celery run holds the lock: `sync --local` is turned away.
        sim.configure(latency_ms_per_request=1000)
        sim.mutate("Property", count=300, seed=2)
        dispatched = trestle_etl(env, "sync")
        assert dispatched.returncode == 0, dispatched.stderr
        run_id = dispatched.stdout.strip()
        wait_until(lambda: lock_owner(env) == run_id, what="the Celery run taking its lock")
        skipped = trestle_etl(env, "sync", "--local")
        assert skipped.returncode == 3, skipped.stdout + skipped.stderr
        assert "skipped" in skipped.stdout and run_id in skipped.stdout
        # The lock is taken while the run is still `planning`: wait past that too.
        wait_until(lambda: run_status(env, run_id) not in (None, "planning", "running"),
                   timeout_s=120, what="the Celery run finishing")
        assert run_status(env, run_id) == "succeeded"

        # And the other way round: a `sync --local` holds it, the workers skip.
        sim.mutate("Property", count=300, seed=3)
        local_run = subprocess.Popen([sys.executable, "-m", "trestle_tasks", "sync", "--local"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        try:
            wait_until(lambda: lock_owner(env) is not None, what="the local run's lock")
            waited = trestle_etl(env, "sync", "--wait", "--timeout", "60")
            assert waited.returncode == 3, waited.stdout + waited.stderr
            assert "skipped" in waited.stdout and "already being synced" in waited.stdout
            out, err = local_run.communicate(timeout=120)
        finally:
            if local_run.poll() is None:
                local_run.kill()
        assert local_run.returncode == 0, out + err
        sim.configure(latency_ms_per_request=0)
        last = trestle_etl(env, "sync", "--wait", "--timeout", "120")
        assert last.returncode == 0, last.stdout + last.stderr
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        stop(worker)
        sim.stop()
