"""`status` shows runs being planned (with their planner), failed plans, and the run locks
held in the database with their owner run, age and lease: a lease that lapsed with its
owner still set is an orphan (a killed worker), a lock whose owner run is already closed
is marked too, free locks are not listed, and a database without the lock table shows no
section. On real databases, through `python -m trestle_tasks status` (text and --json)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.core.settings import load_settings
from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import FAILED, PLANNING, RUNNING, SUCCEEDED
from trestle_tasks.worker import factory

from .sync_fixtures import DIALECTS, create_database, drop_database
from .test_metrics import dispose_store

pytestmark = pytest.mark.integration

PLANNER = "celery@host-a pid 1234"
PLAN_ERROR = "planning failed: $count of Property: HTTP 503 from the server"


def run_id(name: str) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{name}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Scene:
    url: str
    owners: dict[str, str]  # what each lock (or run) stands for -> its run id


def write_planning_row(store: Store, run: str, resource: str, started_at: datetime) -> None:
    """A Celery run's row as it is written before planning's first request."""
    log = bookkeeping(store.schema)["etl_sync_log"]
    with store.engine.begin() as conn:
        conn.execute(log.insert().values(
            run_id=run, resource=resource, started_at=started_at, status=PLANNING,
            details=encode_json({"planner": PLANNER, "phase": "planning"})))


def stage(store: Store) -> dict[str, str]:
    """Locks and runs in every state `status` tells apart; returns their run ids."""
    lock = DatabaseRunLock(store.engine, schema=store.schema)
    sync_log = store.sync_log
    owners = {name: run_id(name) for name in ("orphan", "planning", "kept", "free",
                                              "failedplan")}
    now = datetime.now(UTC)
    # A worker killed mid-run: its row still `running`, its lease (1 s) left to lapse.
    sync_log.open_run(owners["orphan"], "Property", started_at=now - timedelta(minutes=5),
                      windows_total=4)
    assert lock.acquire("Property", owners["orphan"], ttl_s=1) is not None
    # A run being planned right now, its lock live.
    write_planning_row(store, owners["planning"], "Office", now - timedelta(seconds=30))
    assert lock.acquire("Office", owners["planning"], ttl_s=600) is not None
    # A run that closed but never released its lock (live lease).
    sync_log.open_run(owners["kept"], "Member", started_at=now - timedelta(minutes=2))
    sync_log.close_run(owners["kept"], "Member", status=SUCCEEDED)
    assert lock.acquire("Member", owners["kept"], ttl_s=600) is not None
    # A lock taken and released: free, so not listed.
    grant = lock.acquire("Media", owners["free"], ttl_s=600)
    assert grant is not None and lock.release(grant)
    # A plan that failed: a failed row with its error and no windows.
    sync_log.open_run(owners["failedplan"], "Media", started_at=now - timedelta(minutes=1),
                      details={"planner": PLANNER, "phase": "planning"})
    sync_log.close_run(owners["failedplan"], "Media", status=FAILED, error=PLAN_ERROR)
    time.sleep(1.5)  # the 1 s lease lapses
    return owners


@pytest.fixture(params=DIALECTS)
def scene(request, tmp_path) -> Iterator[Scene]:
    url, name = create_database(request.param, tmp_path)
    settings = load_settings({"DATABASE_URL": url, "LOCK_DIR": str(tmp_path)},
                             env_file=None, require_credentials=False)
    try:
        store = factory.store(settings)
        store.evolve_bookkeeping()
        yield Scene(url, stage(store))
    finally:
        dispose_store(url)
        drop_database(request.param, name)


def trestle_etl(url: str, cwd, *args: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "ALERT_"))}
    env.update(DATABASE_URL=url, REDIS_URL="redis://127.0.0.1:1/0")
    shown = subprocess.run([sys.executable, "-m", "trestle_tasks", "status", *args], env=env,
                           capture_output=True, text=True, timeout=120, cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_status_json_lists_held_locks_and_open_runs(scene, tmp_path):
    report = json.loads(trestle_etl(scene.url, tmp_path, "--json"))
    locks = {lock["resource"]: lock for lock in report["locks"]}
    assert set(locks) == {"Property", "Office", "Member"}  # Media's lock is free

    orphan = locks["Property"]
    assert orphan["owner"] == scene.owners["orphan"] and orphan["fence"] >= 1
    assert orphan["orphaned"] is True
    assert orphan["held_s"] >= 1.4 and orphan["lease_left_s"] <= -0.4
    assert (orphan["owner_status"], orphan["owner_finished"]) == (RUNNING, False)

    live = locks["Office"]
    assert live["owner"] == scene.owners["planning"] and live["orphaned"] is False
    assert 1.4 <= live["held_s"] < 120 and 480 < live["lease_left_s"] <= 600
    assert (live["owner_status"], live["owner_finished"]) == (PLANNING, False)

    kept = locks["Member"]
    assert kept["orphaned"] is False and kept["lease_left_s"] > 480
    assert (kept["owner_status"], kept["owner_finished"]) == (SUCCEEDED, True)

    runs = {run["run_id"]: run for run in report["runs"]}
    planning = runs[scene.owners["planning"]]
    assert planning["status"] == PLANNING and planning["planner"] == PLANNER
    assert 29 <= planning["open_for_s"] < 300
    assert runs[scene.owners["orphan"]]["open_for_s"] >= 299  # running, no planner
    assert runs[scene.owners["orphan"]]["planner"] is None
    failed = runs[scene.owners["failedplan"]]
    assert (failed["status"], failed["error"], failed["fetched"]) == (FAILED, PLAN_ERROR, 0)
    assert failed["open_for_s"] is None and failed["planner"] is None


def test_status_text_shows_owner_age_and_orphans(scene, tmp_path):
    text = trestle_etl(scene.url, tmp_path)
    section = text.split("Run locks (held", 1)[1].split("\n\n", 1)[0]
    lines = {line.split()[0]: line for line in section.splitlines()[1:]}
    assert set(lines) == {"Property", "Office", "Member"}
    assert f"owner {scene.owners['orphan']}" in lines["Property"]
    assert re.search(r"fence \d+  held for \d+ s  orphaned: lease lapsed \d+ s ago",
                     lines["Property"]), lines["Property"]
    assert "orphaned: lease lapsed" in lines["Property"]
    assert "(its owner stopped renewing it)" in lines["Property"]
    assert "owner run running" in lines["Property"]
    assert "lease left 9 min" in lines["Office"] or "lease left 10 min" in lines["Office"]
    assert "orphaned" not in lines["Office"] and "owner run planning" in lines["Office"]
    assert "owner run succeeded" in lines["Member"]
    assert "(owner run finished but kept the lock)" in lines["Member"]
    assert "orphaned" not in lines["Member"]

    runs = text.split("Recent runs:", 1)[1].split("Run locks (held", 1)[0]
    planning = runs.split(scene.owners["planning"], 1)[1].splitlines()[1]
    assert "planning for" in planning and f"by {PLANNER}" in planning
    failed_at = runs.index(scene.owners["failedplan"])
    assert f"error: {PLAN_ERROR}" in runs[failed_at:].splitlines()[1]
    orphan = runs.split(scene.owners["orphan"], 1)[1].splitlines()[1]
    assert re.fullmatch(r" +running for 5 min \d+ s", orphan), orphan
    for section_name in ("Watermarks (lag behind now", "Reconcile (latest", "Quota:"):
        assert section_name in text


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_no_lock_table_no_section(dialect, tmp_path):
    """A database from before the lock table: no section, no failure, nothing created."""
    url, name = create_database(dialect, tmp_path)
    settings = load_settings({"DATABASE_URL": url, "LOCK_DIR": str(tmp_path)},
                             env_file=None, require_credentials=False)
    try:
        store = factory.store(settings)
        store.evolve_bookkeeping()
        store.sync_log.open_run(run_id("old"), "Property")
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE etl_run_lock"))
        assert DatabaseRunLock(store.engine).held_locks() == []
        report = json.loads(trestle_etl(url, tmp_path, "--json"))
        assert report["locks"] == [] and len(report["runs"]) == 1
        text = trestle_etl(url, tmp_path)
        assert "Run locks" not in text and "Recent runs:" in text
        assert not sa.inspect(store.engine).has_table("etl_run_lock")
    finally:
        dispose_store(url)
        drop_database(dialect, name)
