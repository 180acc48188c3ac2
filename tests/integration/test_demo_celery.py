"""`trestle-etl demo --celery`: the demo through real worker processes, on the tests'
Celery database (tests/redis_space.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.redis_space import redis_url

from .cli_process import clean_env, trestle_etl

pytestmark = pytest.mark.integration
REDIS_URL = redis_url("celery")
RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")


def worker_names(stderr: str) -> list[str]:
    match = re.search(r"Celery worker\(s\) ready on Redis at \S+: (.+)", stderr)
    assert match, stderr
    return [name.strip() for name in match.group(1).split(",")]


def running_worker_commands(names: list[str]) -> list[str]:
    """Command lines of live processes started as one of these workers."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(f"-n {name}" in text for name in names):
            found.append(text)
    return found


def test_demo_through_celery_workers(celery_redis, tmp_path):
    database = tmp_path / "demo.sqlite3"
    result = trestle_etl("demo", "--celery", "--redis-url", REDIS_URL, "--records", "300",
                         "--database", str(database), env=clean_env(), cwd=tmp_path,
                         timeout=240)
    assert result.returncode == 0, result.stderr + result.stdout
    names = worker_names(result.stderr)
    assert len(names) == 2
    assert "stopped the 2 Celery worker(s)" in result.stderr
    assert running_worker_commands(names) == []
    for resource in RESOURCES:
        assert re.search(rf"^{resource}\s+succeeded\s", result.stdout, re.M), resource
    assert "Incremental sync after changing 25 listings: fetched 25 records" in result.stdout

    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM property")).scalar_one() == 300
            rows = conn.execute(sa.text("SELECT run_id, resource FROM etl_sync_log")).all()
            windows = conn.execute(sa.text(
                "SELECT COUNT(*) FROM etl_sync_window")).scalar_one()
    finally:
        engine.dispose()
    # Dispatched as `sync --wait` does: one run id for the five resources sent together,
    # then one for the incremental Property run.
    runs: dict[str, set[str]] = {}
    for run_id, resource in rows:
        runs.setdefault(run_id, set()).add(resource)
    assert sorted(runs.values(), key=len) == [{"Property"}, set(RESOURCES)]
    assert windows >= 2  # the listings were cut into windows for the workers to share
    # Nothing of the demo's is left queued in its Redis database.
    assert sum(celery_redis.llen(queue) for queue in ("planning", "windows", "maintenance")) == 0


def test_interrupted_demo_stops_its_workers(celery_redis, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "trestle_tasks", "demo", "--celery", "--redis-url", REDIS_URL,
         "--records", "3000", "--database", str(tmp_path / "demo.sqlite3")],
        env=clean_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    seen = ""
    deadline = time.monotonic() + 120
    try:
        assert process.stderr is not None
        while "Celery worker(s) ready" not in seen and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen += line
        names = worker_names(seen)
        assert len(running_worker_commands(names)) >= 2
        process.send_signal(signal.SIGINT)  # Ctrl-C mid-sync
        _out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert running_worker_commands(names) == [], err
    assert sum(celery_redis.llen(queue) for queue in ("planning", "windows", "maintenance")) == 0


def test_demo_of_two_feeds_through_celery_workers(celery_redis, tmp_path):
    """`demo --celery --feeds 2`: both feeds' runs through the same workers, each feed's
    records in its own file, equal in keys and different in values."""
    database = tmp_path / "demo.sqlite3"
    result = trestle_etl("demo", "--celery", "--feeds", "2", "--redis-url", REDIS_URL,
                         "--records", "150", "--database", str(database), env=clean_env(),
                         cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr + result.stdout
    for feed in ("north", "south"):
        for resource in RESOURCES:
            assert re.search(rf"^{feed}/{resource}\s+succeeded\s", result.stdout, re.M)
        assert (f"Feed {feed}: incremental sync after changing 25 listings: fetched 25 "
                "records") in result.stdout
    stored = {}
    for feed in ("north", "south"):
        engine = sa.create_engine(f"sqlite:///{tmp_path / f'demo-{feed}.sqlite3'}")
        try:
            with engine.connect() as conn:
                stored[feed] = dict(conn.execute(sa.text(
                    "SELECT ListingKey, ListPrice FROM property")).all())
        finally:
            engine.dispose()
    assert len(stored["north"]) == len(stored["south"]) == 150
    assert set(stored["north"]) == set(stored["south"])  # the same keys …
    assert stored["north"] != stored["south"]  # … holding each feed's own listings
    assert not database.exists()  # with several feeds, one file per feed beside it
