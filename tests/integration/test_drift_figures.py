"""Drift as a figure: reconcile rows written through the sync log (the contract's `details`,
old-shape rows, dry runs, a failed census) read back by `status` (text and `--json`), by
the metrics endpoint scraped over HTTP, and by the drift alert, on real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.alert_receivers import HttpReceiver
from tests.redis_space import redis_url
from trestle_tasks.cli.metrics_http import start_metrics_server
from trestle_tasks.cli.status import collect_status, render_status
from trestle_tasks.core.settings import Settings, load_settings
from trestle_tasks.store.sync_log import FAILED, SUCCEEDED, SyncLog, SyncRun
from trestle_tasks.worker import alert_hooks as hooks
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

from .sync_fixtures import DIALECTS, create_database, drop_database
from .test_metrics import dispose_store, scrape, value

pytestmark = pytest.mark.integration
# Whole seconds: every database keeps them exactly, so epochs compare with ==.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
HOUR = timedelta(hours=1)

# The contract's example: a repaired daily reconcile of a 1,000,000-record Property.
REPAIRED = {"kind": "reconcile", "dry_run": False, "census": 1_000_000, "stored": 999_880,
            "missing": 120, "stale": 3, "gone": 5, "restored": 40, "fetched": 123,
            "deleted": 5, "census_requests": 4, "repair_requests": 3}
DRY_RUN = {"kind": "reconcile", "dry_run": True, "census": 1_000_010, "stored": 1_000_000,
           "missing": 7, "stale": 2, "gone": 1, "restored": 0, "fetched": 0, "deleted": 0,
           "census_requests": 4, "repair_requests": 0}
OLD_SHAPE = {"kind": "reconcile", "census": 250, "stored": 252, "deleted": 2, "restored": 1}
CLEAN = {"kind": "reconcile", "dry_run": False, "census": 500, "stored": 500, "missing": 0,
         "stale": 0, "gone": 0, "restored": 0, "fetched": 0, "deleted": 0,
         "census_requests": 1, "repair_requests": 0}


@dataclass(frozen=True)
class Written:
    url: str
    settings: Settings
    runs: dict[str, SyncRun]


def write_reconcile(sync_log: SyncLog, resource: str, name: str, at: datetime, *,
                    details: dict[str, Any], requests: int, status: str = SUCCEEDED,
                    error: str | None = None) -> SyncRun:
    """One reconcile row as the reconcile writes it: open, counts, close with details."""
    run_id = f"{at:%Y%m%dT%H%M%S}-{name}"
    sync_log.open_run(run_id, resource, started_at=at, details={"kind": "reconcile"})
    fetched, deleted = int(details.get("fetched") or 0), int(details.get("deleted") or 0)
    sync_log.add_counts(run_id, resource, api_requests=requests, fetched=fetched,
                       upserted=fetched, deleted=deleted)
    run = sync_log.close_run(run_id, resource, status=status, error=error,
                            finished_at=at + timedelta(seconds=40), details=details)
    assert run is not None
    return run


def write_history(sync_log: SyncLog) -> dict[str, SyncRun]:
    runs = {
        # Property: an old-shape row, a repair, then a dry run (the latest), a skipped
        # trigger and a sync after it (neither is a reconcile).
        "property-old": write_reconcile(sync_log, "Property", "p0", T0, details=OLD_SHAPE,
                                        requests=4),
        "property-repair": write_reconcile(sync_log, "Property", "p1", T0 + HOUR,
                                           details=REPAIRED, requests=7),
        "property-dry": write_reconcile(sync_log, "Property", "p2", T0 + 2 * HOUR,
                                        details=DRY_RUN, requests=4),
        # Office: only a row from before the census compared timestamps.
        "office-old": write_reconcile(sync_log, "Office", "o0", T0 + HOUR, details=OLD_SHAPE,
                                      requests=1),
        # Member: a clean reconcile, then one whose census failed part way.
        "member-clean": write_reconcile(sync_log, "Member", "m0", T0 + HOUR, details=CLEAN,
                                        requests=1),
        "member-failed": write_reconcile(
            sync_log, "Member", "m1", T0 + 2 * HOUR, status=FAILED, requests=2,
            details={"kind": "reconcile", "dry_run": False},
            error="census page 2: HTTP 503 from the server"),
    }
    sync_log.record_skipped("20991231T000000-skip", "Property",
                           "Property is busy with another run; reconcile later")
    sync_id = f"{T0 + 2 * HOUR:%Y%m%dT%H%M%S}-sync"
    sync_log.open_run(sync_id, "Property", started_at=T0 + 2 * HOUR + timedelta(minutes=5),
                     watermark_to="2026-11-26T07:58:02.1234567Z", windows_total=1)
    sync_log.close_run(sync_id, "Property", status=SUCCEEDED)
    return runs


def reconcile_section(text: str) -> dict[str, str]:
    """The reconcile section's lines by resource (date, time, then the resource)."""
    section = text.split("Reconcile (latest per resource", 1)[1].split("\n\n", 1)[0]
    return {line.split()[2]: line for line in section.splitlines()[1:]
            if not line.lstrip().startswith("error:")}


@pytest.fixture(params=DIALECTS)
def written(request, tmp_path) -> Iterator[Written]:
    url, name = create_database(request.param, tmp_path)
    settings = load_settings({"DATABASE_URL": url, "LOCK_DIR": str(tmp_path),
                              "REDIS_URL": redis_url()},
                             env_file=None, require_credentials=False)
    try:
        store = factory.store(settings)
        store.evolve_bookkeeping()
        yield Written(url, settings, write_history(store.sync_log))
    finally:
        dispose_store(url)
        drop_database(request.param, name)


def test_status_shows_each_resources_latest_reconcile(written):
    report = collect_status(ClusterRuntime(written.settings))
    latest = report["reconcile"]
    assert sorted(latest) == ["Member", "Office", "Property"]
    dry = latest["Property"]
    assert dry["run_id"] == written.runs["property-dry"].run_id
    assert (dry["dry_run"], dry["status"], dry["census"], dry["missing"], dry["stale"],
            dry["gone"], dry["drift"], dry["fetched"], dry["deleted"]) == (
        True, "succeeded", 1_000_010, 7, 2, 1, 10, 0, 0)
    assert (dry["api_requests"], dry["census_requests"], dry["repair_requests"]) == (4, 4, 0)
    old = latest["Office"]
    assert (old["census"], old["deleted"], old["restored"]) == (250, 2, 1)
    assert (old["missing"], old["stale"], old["gone"], old["dry_run"]) == (None, None, None,
                                                                          False)
    failed = latest["Member"]
    assert (failed["status"], failed["census"]) == ("failed", None)
    assert "HTTP 503" in failed["error"]

    text = render_status(report)
    lines = reconcile_section(text)
    assert "dry run" in lines["Property"]
    for shown in ("census 1,000,010", "missing 7", "stale 2", "gone 1", "fetched 0",
                  "deleted 0", "requests 4 (4 census, 0 repair)"):
        assert shown in lines["Property"], shown
    assert "census 250  missing ?  stale ?  gone ?  fetched ?  deleted 2" in lines["Office"]
    assert "failed" in lines["Member"] and "no census figures" in lines["Member"]
    assert "error: census page 2: HTTP 503" in text
    # The rest of the report is as it was.
    for section in ("Recent runs:", "Watermarks (lag behind now", "Quota:", "API usage:"):
        assert section in text


def test_status_json_from_the_command_carries_the_same(written, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "ALERT_"))}
    env.update(DATABASE_URL=written.url, REDIS_URL="redis://127.0.0.1:1/0")
    shown = subprocess.run([sys.executable, "-m", "trestle_tasks", "status", "--json"],
                           env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    latest = json.loads(shown.stdout)["reconcile"]
    assert latest["Property"]["run_id"] == written.runs["property-dry"].run_id
    assert {k: latest["Property"][k] for k in DRY_RUN if k != "kind"} == {
        k: v for k, v in DRY_RUN.items() if k != "kind"}
    assert latest["Office"]["missing"] is None and latest["Member"]["status"] == "failed"
    text = subprocess.run([sys.executable, "-m", "trestle_tasks", "status"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path).stdout
    assert "Reconcile (latest per resource; drift = missing + stale + gone):" in text
    assert "census 1,000,010" in text


def test_metrics_export_the_latest_measured_drift(written):
    server, _thread = start_metrics_server({"default": ClusterRuntime(written.settings)},
                                           "127.0.0.1", 0)
    try:
        samples = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    drift = {(resource, kind): value(samples, "trestle_replica_drift_records",
                                     resource=resource, kind=kind)
             for resource in ("Property", "Member", "Office")
             for kind in ("missing", "stale", "gone")}
    # Property: the dry run (the latest, and it measured); Member: the clean run, since the
    # failed census measured nothing; Office: an old row, its drift unknown (no series).
    assert drift == {("Property", "missing"): 7, ("Property", "stale"): 2,
                     ("Property", "gone"): 1, ("Member", "missing"): 0,
                     ("Member", "stale"): 0, ("Member", "gone"): 0,
                     ("Office", "missing"): None, ("Office", "stale"): None,
                     ("Office", "gone"): None}
    census = {r: value(samples, "trestle_replica_census_records", resource=r)
              for r in ("Property", "Member", "Office")}
    assert census == {"Property": 1_000_010, "Member": 500, "Office": 250}
    measured = {"Property": written.runs["property-dry"],
                "Member": written.runs["member-clean"], "Office": written.runs["office-old"]}
    for resource, run in measured.items():
        assert value(samples, "trestle_replica_last_reconcile_timestamp_seconds",
                     resource=resource) == run.finished_at.timestamp()
    assert value(samples, "trestle_metrics_scrape_errors_total", source="database") == 0


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_the_drift_alert_after_a_reconcile_run_with_its_cooldown(dialect, tmp_path, hook):
    url, name = create_database(dialect, tmp_path)
    settings = load_settings({
        "TRESTLE_CLIENT_ID": f"drift-{uuid.uuid4().hex[:8]}", "TRESTLE_CLIENT_SECRET": "s-1",
        "DATABASE_URL": url, "LOCK_DIR": str(tmp_path),
        "ALERT_WEBHOOK_URL": hook.url("/hooks/drift"), "ALERT_DRIFT_THRESHOLD": "100"},
        env_file=None)
    try:
        store = factory.store(settings)
        store.evolve_bookkeeping()
        sync_log = store.sync_log
        repaired = write_reconcile(sync_log, "Property", "a1", T0, details=REPAIRED, requests=7)
        sent = hooks.after_run(LocalRuntime(settings), repaired)
        assert [(d.dedup_key, d.status) for d in sent] == [("drift:Property", "sent")]
        [(_path, body)] = hook.requests
        assert (body["kind"], body["resource"]) == ("drift", "Property")
        assert "120 missing, 3 stale, 5 gone" in body["text"]
        # A dry run below the threshold says nothing; one above it is within the cooldown.
        quiet = write_reconcile(sync_log, "Property", "a2", T0 + HOUR, details=DRY_RUN,
                                requests=4)
        assert hooks.after_run(LocalRuntime(settings), quiet) == []
        loud = write_reconcile(sync_log, "Property", "a3", T0 + 2 * HOUR,
                               details={**DRY_RUN, "missing": 500}, requests=4)
        again = hooks.after_run(LocalRuntime(settings), loud)
        assert [(d.dedup_key, d.status) for d in again] == [("drift:Property", "suppressed")]
        assert len(hook.requests) == 1
    finally:
        dispose_store(url)
        drop_database(dialect, name)
