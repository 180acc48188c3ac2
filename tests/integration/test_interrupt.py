"""Ctrl-C on `sync --local` and `reconcile`: real processes, a real SIGINT.

The run under way is closed `interrupted`, its lock released at once, one line is printed
on stderr (no traceback), the exit status is 130, and the next run starts at once and
leaves the database equal to the feed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.store.sync_log import SyncLog, SyncRun
from trestle_tasks.worker import factory

from .cli_process import clean_env, trestle_etl
from .conftest import start_simulator
from .sync_fixtures import canonical, create_database, drop_database, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=["mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url, name = create_database(request.param, tmp_path)
    yield url
    for key, value in factory._per_process.copy().items():
        if key[1] == f"store:{url}":
            value.dispose()
            factory._per_process.pop(key, None)
    drop_database(request.param, name)


@pytest.fixture
def engine(database: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database)
    yield engine
    engine.dispose()


def command_env(sim, url: str, tmp_path: Path) -> dict[str, str]:
    return clean_env(TRESTLE_CLIENT_ID=sim.client_id, TRESTLE_CLIENT_SECRET=sim.client_secret,
                     TRESTLE_TOKEN_URL=sim.token_url, TRESTLE_BASE_URL=sim.odata_root,
                     DATABASE_URL=url, TRESTLE_RESOURCES="Property", TRESTLE_PAGE_SIZE="100",
                     SYNC_WINDOW_SIZE="400", SYNC_LOCK_TTL="900", LOCK_DIR=str(tmp_path))


def runs(engine: sa.Engine) -> list[SyncRun]:
    try:
        return SyncLog(engine).recent_runs(resource="Property", limit=50)
    except sa.exc.SQLAlchemyError:  # the command has not created the tables yet
        return []


def interrupted_when(ready: Callable[[], bool], args: list[str], env: dict[str, str],
                     cwd: Path) -> subprocess.CompletedProcess[str]:
    """Start `trestle-etl ARGS`, wait for `ready()`, send it SIGINT (Ctrl-C), and wait for
    it to end."""
    process = subprocess.Popen([sys.executable, "-m", "trestle_tasks", *args], env=env,
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never got under way"
            time.sleep(0.05)
        sent_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        # Promptly: window threads stop at their next page, not at their window's end.
        assert time.monotonic() - sent_at < 8, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_interrupted(result: subprocess.CompletedProcess[str], engine: sa.Engine,
                       kind: str = "run") -> SyncRun:
    """Exit 130, one stderr line naming the run and `interrupted`, no traceback; its row
    closed `interrupted` and the lock free. Returns the run."""
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trestle-etl: interrupted: "), lines[0]
    [run] = [r for r in runs(engine) if r.run_id in lines[0]]
    assert f"Property {kind} {run.run_id} marked interrupted" in lines[0]
    assert "its lock was released" in lines[0]
    assert run.status == "interrupted", run
    assert run.finished_at is not None
    assert run.error  # why it ended (`interrupted by its operator (Ctrl-C)`, or planning's)
    assert DatabaseRunLock(engine).holder("Property") is None
    return run


def a_window_runs(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        try:
            return conn.execute(sa.text(
                "SELECT COUNT(*) FROM etl_sync_window WHERE status = 'running'")
            ).scalar_one() > 0
        except sa.exc.SQLAlchemyError:  # no tables yet
            return False


def assert_windows_stopped(run: SyncRun, engine: sa.Engine) -> None:
    """The windows under way ended failed (never succeeded, none left running), those not
    started never started, and the watermark did not move (this was the first run)."""
    windows = SyncLog(engine).windows(run.run_id, "Property")
    assert windows and all(w.status in ("succeeded", "failed") for w in windows)
    stopped = [w for w in windows if w.status == "failed"]
    assert stopped and all("interrupted" in (w.error or "") for w in stopped)
    assert len(windows) < (run.windows_total or 0)
    assert SyncLog(engine).read_watermark("Property") is None


def assert_database_equals_simulator(sim, url: str) -> None:
    store = factory.store(settings_for(sim, url))
    stored = {canonical(r) for r in store.records("Property")}
    served = {canonical(r) for r in sim.records("Property")}
    assert len(stored) == len(served)
    assert stored == served


def sync_again(sim, url: str, env: dict[str, str], tmp_path: Path, *,
               equal: bool = True) -> None:
    """The next cron run: it starts at once (no lease to wait out, not skipped) and
    leaves the database equal to the feed (deletions aside: `equal=False`)."""
    sim.configure(latency_ms_per_request=0)
    started = time.monotonic()
    result = trestle_etl("sync", "--local", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "skipped" not in result.stdout + result.stderr
    assert time.monotonic() - started < 30
    if equal:
        assert_database_equals_simulator(sim, url)


def test_ctrl_c_while_windows_are_walked(database, engine, tmp_path):
    """`sync --local` interrupted while its window threads walk their pages."""
    sim = start_simulator(records=2000, seed=61, latency_ms_per_request=250)
    try:
        env = command_env(sim, database, tmp_path)

        result = interrupted_when(lambda: a_window_runs(engine), ["sync", "--local"], env,
                                  tmp_path)
        assert_windows_stopped(assert_interrupted(result, engine), engine)
        sync_again(sim, database, env, tmp_path)
    finally:
        sim.stop()


def test_ctrl_c_while_planning(database, engine, tmp_path):
    """Interrupted during planning's census of the feed (one request, 4 s long): no window
    ever started."""
    sim = start_simulator(records=600, seed=62, latency_ms_per_request=4000)
    try:
        env = command_env(sim, database, tmp_path)

        def planning() -> bool:  # the lock is taken once the tables exist
            try:
                return DatabaseRunLock(engine).holder("Property") is not None
            except sa.exc.SQLAlchemyError:
                return False

        result = interrupted_when(planning, ["sync", "--local"], env, tmp_path)
        assert result.returncode == 130, result.stderr
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("trestle-etl: interrupted: "), lines
        assert "lock was released" in lines[0]
        assert DatabaseRunLock(engine).holder("Property") is None
        # Whatever row planning had written is closed; none is left open.
        assert all(r.finished_at is not None for r in runs(engine))
        assert all(r.status == "interrupted" for r in runs(engine))
        sync_again(sim, database, env, tmp_path)
    finally:
        sim.stop()


def test_ctrl_c_during_a_reconcile_census(database, engine, tmp_path):
    sim = start_simulator(records=800, seed=63)
    try:
        env = command_env(sim, database, tmp_path)
        first = trestle_etl("sync", "--local", env=env, cwd=tmp_path, timeout=60)
        assert first.returncode == 0, first.stderr
        sim.mutate("Property", count=20, seed=7, delete=5)  # drift for the next reconcile
        # The census is one request; it takes 4 s now: Ctrl-C lands in it.
        sim.configure(latency_ms_per_request=4000)

        def census_under_way() -> bool:
            return any(r.status == "running" and (r.details or {}).get("kind") == "reconcile"
                       for r in runs(engine))

        result = interrupted_when(census_under_way, ["reconcile", "--local"], env, tmp_path)
        run = assert_interrupted(result, engine, kind="reconcile")
        assert (run.details or {}).get("kind") == "reconcile"  # still read as a reconcile
        assert "census" not in (run.details or {})  # stopped before the census finished

        # The changes, by the watermark; the deletions are the next reconcile's to find.
        sync_again(sim, database, env, tmp_path, equal=False)
        repaired = trestle_etl("reconcile", "--local", env=env, cwd=tmp_path, timeout=60)
        assert repaired.returncode == 0, repaired.stderr + repaired.stdout
        assert_database_equals_simulator(sim, database)
    finally:
        sim.stop()


def test_ctrl_c_on_sqlite(tmp_path):
    """The same on SQLite, where the window threads and the cleanup share one file."""
    url, _name = create_database("sqlite", tmp_path)
    engine = sa.create_engine(url)
    sim = start_simulator(records=1500, seed=64, latency_ms_per_request=250)
    try:
        env = command_env(sim, url, tmp_path)

        result = interrupted_when(lambda: a_window_runs(engine), ["sync", "--local"], env,
                                  tmp_path)
        assert_windows_stopped(assert_interrupted(result, engine), engine)
        sync_again(sim, url, env, tmp_path)
    finally:
        sim.stop()
        engine.dispose()
        for key, value in factory._per_process.copy().items():
            if key[1] == f"store:{url}":
                value.dispose()
                factory._per_process.pop(key, None)
