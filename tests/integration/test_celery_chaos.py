"""Chaos through real Celery workers: two beats at once, MariaDB and Redis restarted
mid-run, whole-run retries followed by `sync --wait`.

The servers restarted are the test's own (a mariadbd and a redis-server on free ports, their
data in the test's tmp_path), never the shared ones: tests running beside this one (another
pytest process, another run of the suite) keep their MariaDB and Redis.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from trestle_tasks.core.settings import load_settings
from trestle_tasks.store.sync_log import peak_in_flight
from trestle_tasks.worker import factory

from .conftest import start_simulator
from .test_celery_sync import (  # noqa: F401 - clean_redis and mariadb_url are fixtures
    assert_equal_to_feed,
    clean_redis,
    dispatched_run_id,
    mariadb_url,
    run_status,
    start_worker,
    stop,
    sync_wait_in_background,
    trestle_etl,
    wait_for_a_running_window,
    with_store,
    worker_env,
)
from .test_celery_sync import start_beat as start_watchdog_beat

pytestmark = pytest.mark.integration
INTERVAL_S = 6.0
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = shutil.which("mariadb-install-db")


def start_beat(env, tmp_path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / f"{name}-schedule"), "--pidfile", ""],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def sync_runs(env) -> list:
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        # Runs only: not reconciles, nor the hourly row polls write their cycles into.
        return [r for r in store.sync_log.recent_runs(limit=500, resource="Property")
                if (r.details or {}).get("kind") not in ("reconcile", "polls")]
    finally:
        store.dispose()
        factory._per_process.clear()


def test_two_beats_at_once_make_one_run_per_interval(clean_redis, mariadb_url,  # noqa: F811
                                                     tmp_path):
    sim = start_simulator(records=400, seed=61)
    # Polling off: with it, the beat's runs are skipped while polls keep Property current,
    # and this is about the beat's runs.
    env = worker_env(sim, mariadb_url, TRESTLE_RESOURCES="Property",
                     SYNC_INTERVAL_MINUTES=str(INTERVAL_S / 60), SYNC_POLL_QUOTA_SHARE="0")
    worker = start_worker(env, "beats", concurrency=2)
    beats = []
    try:
        beats.append(start_beat(env, tmp_path, "first"))
        time.sleep(INTERVAL_S / 3)  # the second beat fires at another phase of the interval
        beats.append(start_beat(env, tmp_path, "second"))
        started = time.monotonic()
        sim.mutate("Property", count=20, seed=1)
        time.sleep(INTERVAL_S * 1.5)
        sim.mutate("Property", count=20, seed=2)
        time.sleep(INTERVAL_S * 2)
        for beat in beats:
            stop(beat)
        elapsed = time.monotonic() - started + INTERVAL_S / 3
        deadline = time.monotonic() + 60  # let the last triggered run finish
        while any(r.status == "running" for r in sync_runs(env)):
            assert time.monotonic() < deadline, "a run never finished"
            time.sleep(0.5)

        runs = sync_runs(env)
        ran = sorted((r for r in runs if r.status != "skipped"), key=lambda r: r.started_at)
        skipped = [r for r in runs if r.status == "skipped"]
        assert all(r.status == "succeeded" for r in ran), [(r.status, r.error) for r in ran]
        # One beat alone would have fired once at start and once per interval since.
        intervals = int(elapsed // INTERVAL_S) + 1
        assert 2 <= len(ran) <= intervals + 1, (len(ran), intervals)
        # Every second-beat trigger was turned away and said why.
        assert len(skipped) >= len(ran) - 1
        assert any("second beat" in (r.error or "") for r in skipped)
        gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(ran)]
        assert all(gap >= INTERVAL_S * 0.7 for gap in gaps), gaps
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        for beat in beats:
            stop(beat)
        stop(worker)
        sim.stop()


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class PrivateMariaDB:
    """A mariadbd of this test's own: its data folder in `folder`, on `port`, root without
    a password over TCP. Restarting it disturbs no other test (nor any other test run)."""

    def __init__(self, folder, port: int) -> None:
        self.folder, self.port = folder, port
        self.process: subprocess.Popen | None = None
        subprocess.run([MARIADB_INSTALL_DB, "--no-defaults", f"--datadir={folder / 'data'}",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        *self._user()], check=True, capture_output=True, timeout=120)
        self.start()

    @staticmethod
    def _user() -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.folder / 'data'}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder / 'mysqld.sock'}", f"--pid-file={self.folder / 'pid'}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M", *self._user()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not answers(self.port):
            assert self.process.poll() is None, "mariadbd exited"
            assert time.monotonic() < deadline, "mariadbd did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, as start-stop-daemon --stop sends: a clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql",
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
        engine.dispose()
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{name}"


@pytest.mark.skipif(not os.path.exists(MARIADBD) or MARIADB_INSTALL_DB is None,
                    reason="needs mariadbd and mariadb-install-db for a MariaDB of its own")
def test_mariadb_restarted_mid_run_loses_nothing(clean_redis, tmp_path):  # noqa: F811
    """MariaDB down for 5 s mid-run: `sync --wait` waits it out and follows the run (or its
    whole-run retry) to a success; the database ends equal to the feed."""
    mariadb = PrivateMariaDB(tmp_path / "mariadb", free_port())
    sim = worker = beat = waiting = None
    try:
        sim = start_simulator(records=2000, seed=71, minute_quota=None,
                              latency_ms_per_request=200)
        env = worker_env(sim, mariadb.create_database("restarted"), SYNC_WINDOW_SIZE="500",
                         TRESTLE_PAGE_SIZE="100", TRESTLE_RESOURCES="Property",
                         SYNC_INTERVAL_MINUTES="600")
        worker = start_worker(env, "mariadb-restart", concurrency=2)
        beat = start_watchdog_beat(env, tmp_path)
        waiting = sync_wait_in_background(env)
        run_id = dispatched_run_id(waiting)
        wait_for_a_running_window(env, run_id)
        time.sleep(1)
        mariadb.restart(down_s=5)
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, out + err
        assert "succeeded" in out
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        for process in (beat, worker):
            if process is not None:
                stop(process)
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
        if sim is not None:
            sim.stop()
        mariadb.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_private_redis(port: int, folder) -> subprocess.Popen:
    """A Redis of this test's own (no persistence: a restart forgets everything), so that
    restarting it disturbs no other test run on this machine."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_restarted_mid_run_loses_nothing(mariadb_url, tmp_path):  # noqa: F811
    """Redis (broker, results, locks' helpers, limiter) restarted empty mid-run: queued
    messages and results are gone, the database still knows every window; the watchdog
    sends again what was lost, `sync --wait` follows the same run to its success."""
    port = free_port()
    redis_server = start_private_redis(port, tmp_path)
    sim = start_simulator(records=2000, seed=73, minute_quota=None, latency_ms_per_request=200)
    # The shortest window limits (the messages the restart lost are sent again after
    # 22.5 s instead of 90): the same recovery, in half the test's time.
    env = worker_env(sim, mariadb_url, SYNC_WINDOW_SIZE="300", TRESTLE_PAGE_SIZE="100",
                     TRESTLE_RESOURCES="Property", SYNC_INTERVAL_MINUTES="600",
                     SYNC_WINDOW_STALE_SECONDS="10", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    worker = start_worker(env, "redis-restart", concurrency=2)
    beat = start_watchdog_beat(env, tmp_path)
    waiting = None
    try:
        waiting = sync_wait_in_background(env)
        run_id = dispatched_run_id(waiting)
        wait_for_a_running_window(env, run_id)
        time.sleep(1)
        redis_server.terminate()
        redis_server.wait(timeout=20)
        time.sleep(3)
        redis_server = start_private_redis(port, tmp_path)
        out, err = waiting.communicate(timeout=400)
        assert waiting.returncode == 0, out + err
        # Windows that met the outage retry; one that outlasted its retries fails the run,
        # which is then retried as a whole: `sync --wait` follows it to its success.
        runs = sorted(sync_runs(env), key=lambda r: r.started_at)
        print("\nruns after the Redis restart:", [(r.status, r.error) for r in runs])
        assert runs[-1].status == "succeeded" and len(runs) <= 3
        assert runs[0].run_id == run_id
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        stop(beat)
        stop(worker)
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
        redis_server.terminate()
        sim.stop()


def test_a_run_failed_transiently_is_retried_as_a_whole(clean_redis, mariadb_url):  # noqa: F811
    """An outage starts after the run made progress: its window waits out its budget and
    fails; the run fails visibly and is planned again by itself after a backoff; `sync
    --wait` says when that retry is due, waits for it, and ends with its success."""
    sim = start_simulator(records=300, seed=81, latency_ms_per_request=400)
    env = worker_env(sim, mariadb_url, TRESTLE_RESOURCES="Property", TRESTLE_RETRY_BUDGET="1",
                     SYNC_RETRY_DELAY="1", TRESTLE_PAGE_SIZE="10")
    worker = start_worker(env, "run-retry", concurrency=2)
    waiting = None
    try:
        first = trestle_etl(env, "sync", "--wait", "--timeout", "120")
        assert first.returncode == 0, first.stdout + first.stderr
        sim.mutate("Property", count=40, seed=3)
        waiting = sync_wait_in_background(env, timeout_s=180)
        deadline = time.monotonic() + 90
        run_id = dispatched_run_id(waiting)
        while not with_store(env, lambda store: getattr(
                store.sync_log.get_run(run_id, "Property"), "records_fetched", 0)):
            assert time.monotonic() < deadline, "the run never made progress"
            time.sleep(0.05)
        sim.configure(rate_5xx=1.0)  # every request fails until the outage ends
        while not [r for r in sync_runs(env) if r.status == "failed"]:
            assert time.monotonic() < deadline, "the first attempt never failed"
            time.sleep(0.3)
        sim.configure(rate_5xx=0.0)
        out, err = waiting.communicate(timeout=180)
        assert waiting.returncode == 0, out + err
        assert "retried as a whole at" in err and "attempt 2 of 3" in err, err
        runs = sorted(sync_runs(env), key=lambda r: r.started_at)[1:]
        # 5xx are retried: failed once (or twice, if the retry met the outage's tail),
        # then succeeded.
        assert [r.status for r in runs][-1] == "succeeded", [(r.status, r.error) for r in runs]
        assert 2 <= len(runs) <= 3 and all(r.status == "failed" for r in runs[:-1])
        assert all((r.details or {}).get("retry") for r in runs[:-1])
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        stop(worker)
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
        sim.stop()


def test_a_run_that_made_no_progress_is_told_at_once_not_retried(clean_redis,  # noqa: F811
                                                                 mariadb_url):  # noqa: F811
    """One budget of no progress per run: a run whose every request failed for a whole
    TRESTLE_RETRY_BUDGET fails with the reason, is not retried (by its window or as a
    whole), and `sync --wait` says so as soon as the budget is spent."""
    sim = start_simulator(records=300, seed=82)
    env = worker_env(sim, mariadb_url, TRESTLE_RESOURCES="Property", TRESTLE_RETRY_BUDGET="2",
                     SYNC_RETRY_DELAY="1")
    worker = start_worker(env, "no-progress", concurrency=2)
    try:
        first = trestle_etl(env, "sync", "--wait", "--timeout", "120")
        assert first.returncode == 0, first.stdout + first.stderr
        sim.mutate("Property", count=40, seed=3)
        sim.configure(rate_5xx=1.0)  # the service is gone
        started = time.monotonic()
        second = trestle_etl(env, "sync", "--wait", "--timeout", "120")
        took = time.monotonic() - started
        assert second.returncode != 0
        assert "no successful answer from Trestle" in second.stdout, second.stdout
        assert "retried as a whole" not in second.stderr
        assert took < 30, took  # one budget (2 s) and the round trips, not retries
        [run] = [r for r in sync_runs(env) if r.status == "failed"]
        assert (run.details or {}).get("not_retried") and not (run.details or {}).get("retry")
    finally:
        stop(worker)
        sim.stop()


def test_under_a_429_storm_fewer_windows_run_at_once_and_none_fails(clean_redis,  # noqa: F811
                                                                     mariadb_url):  # noqa: F811
    """Graceful degradation: four worker slots, at most two windows at once, halved when
    429s arrive; windows wait for a slot instead of failing."""
    from trestle_tasks.coordination.concurrency import RedisWindowGate

    sim = start_simulator(records=2000, seed=91, rate_429=0.15, fault_seed=4,
                          retry_after_on_429=1, latency_ms_per_request=50)
    env = worker_env(sim, mariadb_url, TRESTLE_RESOURCES="Property", SYNC_WINDOW_SIZE="250",
                     TRESTLE_PAGE_SIZE="100", SYNC_MAX_CONCURRENT_WINDOWS="2",
                     SYNC_RETRY_DELAY="1")
    worker = start_worker(env, "degrade", concurrency=4)
    try:
        done = trestle_etl(env, "sync", "--wait", "--timeout", "240")
        assert done.returncode == 0, done.stdout + done.stderr
        settings = load_settings(env, env_file=None)
        store = factory.store(settings)
        try:
            run = store.sync_log.recent_runs(limit=1, resource="Property")[0]
            windows = store.sync_log.windows(run.run_id, "Property")
        finally:
            store.dispose()
            factory._per_process.clear()
        # 2,000 records in windows of at most 250 (ties kept whole): far more windows than
        # the four worker slots, so the gate, not the worker count, decides what runs.
        assert run.status == "succeeded" and len(windows) >= 6
        assert run.api_rate_limited > 0  # the storm happened
        assert all(w.attempts == 1 for w in windows)  # deferred, never failed
        # Most windows in flight at any moment, from the sync_log's start and end times.
        peak = peak_in_flight(windows)
        assert peak <= 2
        gate = RedisWindowGate(clean_redis, factory.credential_id(settings), max_slots=2)
        assert gate.shrinks() >= 1
        assert_equal_to_feed(env, sim, ["Property"])
    finally:
        stop(worker)
        sim.stop()
