"""A small Celery cluster for chaos tests: beat and named workers, each worker with a log
folder of its own, so the test can tell from the logs which worker is doing what, and kill
that one (its whole process group, SIGKILL) at a chosen moment.

Used by test_chaos_phases.py; everything here starts real processes (as deployed: the
default settings of the product, beat's watchdog every 30 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.redis_space import celery_database, redis_url

from .test_celery_sync import RABBITMQ_URL, purge_rabbitmq, start_beat, worker_env

BROKERS = ("redis", "rabbitmq")
Line = dict[str, Any]


@contextmanager
def broker_env(broker: str) -> Iterator[dict[str, str]]:
    """The Celery database of tests/redis_space.py (taken and emptied for this example, so
    no other Celery test runs beside it), and the broker's environment: Redis (REDIS_URL,
    the default) or RabbitMQ (its default vhost purged; Redis stays the result backend)."""
    with celery_database():
        if broker == "redis":
            yield {}
            return
        purge_rabbitmq(RABBITMQ_URL)
        try:
            yield {"CELERY_BROKER_URL": RABBITMQ_URL,
                   "CELERY_RESULT_BACKEND": redis_url("celery")}
        finally:
            purge_rabbitmq(RABBITMQ_URL)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log_dir: Path
    killed: bool = False

    @property
    def log_path(self) -> Path:
        return self.log_dir / "application.log"

    def lines(self) -> list[Line]:
        """Every JSON line of its application log so far (a torn last line is skipped)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for raw in text.splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return out


@dataclass
class Cluster:
    """Beat plus workers on one environment; `kill` and `replace` as a chaos test does."""

    env: dict[str, str]
    folder: Path
    workers: list[Worker] = field(default_factory=list)
    beat: subprocess.Popen | None = None

    def start_worker(self, role: str, concurrency: int) -> Worker:
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        log_dir = self.folder / name
        log_dir.mkdir(parents=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker",
             "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip",
             "--without-mingle", "--loglevel", "INFO"],
            env={**self.env, "LOG_DIR": str(log_dir)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        worker = Worker(name, process, log_dir)
        self.workers.append(worker)
        return worker

    def start_beat(self) -> None:
        beat_dir = self.folder / "beat"
        beat_dir.mkdir(parents=True, exist_ok=True)
        self.beat = start_beat({**self.env, "LOG_DIR": str(beat_dir)}, beat_dir)

    def wait_ready(self, workers: list[Worker], timeout_s: float = 60) -> None:
        """Until each worker logged Celery's "ready." line (consuming its queues)."""
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            while not any(str(line.get("message", "")).endswith(" ready.")
                          for line in worker.lines()):
                assert worker.process.poll() is None, f"worker {worker.name} exited"
                assert time.monotonic() < deadline, f"worker {worker.name} never got ready"
                time.sleep(0.2)

    def live(self) -> list[Worker]:
        return [w for w in self.workers if not w.killed]

    def find(self, match: Callable[[Line], bool], timeout_s: float,
             what: str) -> tuple[Worker, Line]:
        """The first live worker whose log has a line `match` accepts, polled every 0.1 s."""
        deadline = time.monotonic() + timeout_s
        while True:
            for worker in self.live():
                for line in worker.lines():
                    if match(line):
                        return worker, line
            if time.monotonic() > deadline:
                raise AssertionError(f"no worker logged {what} within {timeout_s} s")
            time.sleep(0.1)

    def kill(self, worker: Worker) -> float:
        """SIGKILL to the worker's whole process group (main process and pool); returns
        the monotonic time of the kill."""
        os.killpg(worker.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        worker.killed = True
        worker.process.wait(timeout=10)
        return killed_at

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM to every process group at once, SIGKILL to what is left after `grace_s`
        (a warm shutdown can wait for a task; nothing of an example outlives it)."""
        processes = [p for p in [w.process for w in self.workers] + [self.beat]
                     if p is not None and p.poll() is None]
        for process in processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def cluster_env(sim, database_url: str, broker: dict[str, str], **extra: str) -> dict[str, str]:
    """The workers' environment: the product's defaults, beat's own sync triggers far out
    of the way (the test triggers syncs itself), pages of 100 so a window has pages.
    Polls are beat's triggers too: one would take the changes a scenario makes for its
    run (a photo-set refresh, a reconcile's stale records) or hold the lock it needs."""
    return worker_env(sim, database_url, TRESTLE_PAGE_SIZE="100",
                      SYNC_INTERVAL_MINUTES="600", SYNC_POLL_QUOTA_SHARE="0",
                      **{**broker, **extra})


def trestle_etl(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trestle_tasks", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def send_task(env: dict[str, str], name: str, args: tuple[str, ...] = ()) -> str:
    """Send a task by name through the product's Celery app as configured by `env` (its
    broker and routes), from a process of its own; returns the task id."""
    code = ("import json, sys; from trestle_tasks.worker.celery_app import app; "
            "print(app.send_task(sys.argv[1], args=json.loads(sys.argv[2])).id)")
    done = subprocess.run([sys.executable, "-c", code, name, json.dumps(list(args))],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def run_to_end(process: subprocess.Popen, deadline: float) -> tuple[int | None, str, str]:
    """The process's exit code and output, or None (and the process killed) at `deadline`
    (a time.monotonic() value)."""
    try:
        out, err = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return None, out, err


@contextmanager
def watermark_row_locked(database_url: str, resource: str) -> Iterator[Callable[[], None]]:
    """Hold `resource`'s etl_watermark row with SELECT … FOR UPDATE in an open transaction,
    so a finalize trying to advance the watermark waits; yields the release function
    (rollback), which is also called on exit."""
    with held_open(database_url, "SELECT ticks FROM etl_watermark WHERE resource = %s "
                   "FOR UPDATE", (resource,)) as release:
        yield release


@contextmanager
def table_read_held(database_url: str, table: str) -> Iterator[Callable[[], None]]:
    """A transaction that has read `table` and stays open: MariaDB's metadata lock, so an
    ALTER TABLE of it (a deferred index build) waits; yields the release function."""
    with held_open(database_url, f"SELECT 1 FROM `{table}` LIMIT 1", ()) as release:
        yield release


@contextmanager
def held_open(database_url: str, sql: str, parameters: tuple[Any, ...]
              ) -> Iterator[Callable[[], None]]:
    engine = sa.create_engine(database_url)
    conn = engine.connect()
    tx = conn.begin()
    conn.exec_driver_sql(sql, parameters).all()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            tx.rollback()
            conn.close()
            engine.dispose()

    try:
        yield release
    finally:
        release()
