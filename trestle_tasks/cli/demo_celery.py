"""`trestle-etl demo --celery`: the demo's syncs run by real Celery worker processes.

The workers are `celery -A trestle_tasks worker` subprocesses whose environment points at
the demo's simulator and SQLite file (WAL and a busy timeout let several processes write
it), with Redis as broker, result backend, lock and quota store. Runs are dispatched and
followed exactly as `trestle-etl sync --wait` does. The workers are stopped when the demo
ends, whether it finished, failed or was interrupted.

The demo refuses a Redis that other workers are listening on or that holds queued tasks:
its workers would take those tasks and run them against the demo's simulator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from trestle_tasks.cli.demo import Progress, SyncerFactory, demo_feeds
from trestle_tasks.cli.preflight import require_redis
from trestle_tasks.core.errors import FatalError
from trestle_tasks.core.feeds import DEFAULT_FEED
from trestle_tasks.core.masking import mask_url
from trestle_tasks.sync.local import LocalRunResult
from trestle_tasks.sync.plan import Skipped
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

QUEUES = ("planning", "windows", "maintenance")
# Windows small enough that the demo's listings are spread over both workers.
DEMO_WINDOW_SIZE = "1000"
# Variables of ours a worker must not inherit from the shell running the demo.
_OURS = ("TRESTLE_", "DATABASE_", "REDIS_", "CELERY_", "SYNC_", "LOCK_", "LOG_", "ALERT_",
         "DB_", "COST_")


@dataclass
class CelerySyncer:
    """Dispatches runs to the workers and waits for them, as `sync --wait` does."""

    environ: Mapping[str, str]
    timeout_s: float

    @cached_property
    def runtimes(self) -> dict[str, ClusterRuntime]:
        """The cluster's (the demo's workers), built once per feed: `sync --wait` reads
        the runs from its store."""
        return {name: ClusterRuntime(settings)
                for name, settings in demo_feeds(self.environ).items()}

    def sync(self, resources: Sequence[str], on_progress: Progress | None = None,
             feed: str = DEFAULT_FEED) -> list[LocalRunResult]:
        from trestle_tasks.worker import dispatch

        store = self.runtimes[feed].store
        sent = dispatch.dispatch(resources, full=False, feed=feed)
        try:
            finished = dispatch.wait(sent, store, timeout_s=self.timeout_s, poll_s=0.5,
                                     on_progress=on_progress)
        except FatalError as error:
            raise FatalError(self._pointing_at_demo(str(error))) from error
        return [LocalRunResult(f.resource, f.run,
                               Skipped(f.resource, f.skipped_reason) if f.skipped_reason
                               else None)
                for f in finished]


    def _pointing_at_demo(self, message: str) -> str:
        """A hint to run `trestle-etl status` must name the demo's database: without it,
        status reads DATABASE_URL (or the default file), where the demo wrote nothing."""
        database = self.environ.get("DATABASE_URL")
        if not database:  # several feeds: each names its own in FEED_<NAME>_DATABASE_URL
            return message
        return message.replace("`trestle-etl status`",
                               f"`DATABASE_URL={database} trestle-etl status`")


def celery_syncer(redis_url: str, *, workers: int = 2, concurrency: int = 2,
                  timeout_s: float = 600.0,
                  on_stage: Callable[[str], None] = lambda text: None) -> SyncerFactory:
    @contextmanager
    def start(environ: Mapping[str, str]) -> Iterator[CelerySyncer]:
        with _workers(redis_url, environ, workers, concurrency, on_stage) as worker_environ:
            yield CelerySyncer(worker_environ, timeout_s)
        on_stage(f"stopped the {workers} Celery worker(s)")

    return start


def check_redis(redis_url: str) -> None:
    """Fail with one line, before anything starts, when Redis is missing or busy."""
    import redis

    require_redis(redis_url, needed_for="`demo --celery`")
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        queued = sum(int(client.llen(queue)) for queue in QUEUES)
    finally:
        client.close()
    if queued:
        raise FatalError(
            f"Redis at {mask_url(redis_url)} holds {queued} queued Celery tasks; give the "
            "demo a Redis database of its own (--redis-url redis://127.0.0.1:6379/N)")


@contextmanager
def _workers(redis_url: str, environ: Mapping[str, str], count: int, concurrency: int,
             on_stage: Callable[[str], None]) -> Iterator[dict[str, str]]:
    app = _point_app_at(redis_url)
    foreign = _answering_workers(app)
    if foreign:
        raise FatalError(
            f"Celery workers already listen on Redis at {mask_url(redis_url)} "
            f"({', '.join(sorted(foreign))}); give the demo a Redis database of its own "
            "(--redis-url redis://127.0.0.1:6379/N)")
    worker_environ = {**environ, "REDIS_URL": redis_url, "SYNC_WINDOW_SIZE": DEMO_WINDOW_SIZE}
    _create_tables(worker_environ)
    token = uuid.uuid4().hex[:6]
    host = socket.gethostname()
    names = [f"demo{i + 1}-{token}@{host}" for i in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    finished = False
    previous = _terminate_cleanly()
    with tempfile.TemporaryDirectory(prefix="trestle-demo-workers-") as folder:
        try:
            for name in names:
                processes.append(_start_worker(name, worker_environ, concurrency, Path(folder)))
            _wait_until_ready(app, names, processes, Path(folder))
            on_stage(f"{count} Celery worker(s) ready on Redis at {mask_url(redis_url)}: "
                     + ", ".join(names))
            yield worker_environ
            finished = True
        finally:
            for process in processes:
                _stop(process)
            if not finished and processes:
                # Tasks of an interrupted demo would be taken by the next demo's workers.
                app.control.purge()
            signal.signal(signal.SIGTERM, previous)


def _point_app_at(redis_url: str) -> Any:
    """The Celery app of this process, sending to and reading from the demo's Redis."""
    from trestle_tasks.worker.celery_app import app

    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    return app


def _answering_workers(app: Any, timeout_s: float = 1.0) -> set[str]:
    return {name for reply in app.control.ping(timeout=timeout_s) or [] for name in reply}


def _create_tables(environ: Mapping[str, str]) -> None:
    """Migrate here first, as an operator would (`trestle-etl migrate`: in this process),
    so the workers never race to create tables in one SQLite file."""
    from trestle_tasks.sync.schema import migrate_from_service

    for settings in demo_feeds(environ).values():
        here = LocalRuntime(settings)
        migrate_from_service(here.store, here.trestle_client(), here.settings.resources)


def _worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    # The workers run in a scratch folder (so no stray .env is read); they must still find
    # this package when it is run from a checkout rather than installed.
    package_root = str(Path(__file__).resolve().parents[2])  # holds trestle_tasks/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(environ)
    env.update({"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"})
    return env


def _start_worker(name: str, environ: Mapping[str, str], concurrency: int, folder: Path
                  ) -> subprocess.Popen[bytes]:
    log = (folder / f"{name.split('@')[0]}.log").open("wb")
    try:
        return subprocess.Popen(  # noqa: S603 (a fixed command line, no shell)
            [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker",
             "-c", str(concurrency), "-n", name, "--without-gossip", "--without-mingle",
             "--loglevel", "WARNING"],
            env=_worker_env(environ), cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: stopped (children included) by us, not by the
            # terminal's Ctrl-C racing our own shutdown.
            start_new_session=True,
        )
    finally:
        log.close()


def _wait_until_ready(app: Any, names: list[str], processes: list[subprocess.Popen[bytes]],
                      folder: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        for name, process in zip(names, processes, strict=True):
            if process.poll() is not None:
                raise FatalError(f"demo worker {name} exited with code {process.returncode} "
                                 f"on start: {_last_line(folder, name)}")
        if set(names) <= _answering_workers(app):
            return
        if time.monotonic() > deadline:
            raise FatalError(f"the demo workers did not start within {timeout_s:.0f} s")
        time.sleep(0.5)


def _last_line(folder: Path, name: str) -> str:
    try:
        lines = (folder / f"{name.split('@')[0]}.log").read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return next((line for line in reversed(lines) if line.strip()), "(empty log)")[:300]


def _stop(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # warm shutdown: running tasks finish
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def _terminate_cleanly() -> Any:
    """Let SIGTERM unwind like Ctrl-C, so the workers are stopped on the way out."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)
