"""A long run's progress and time left, as `status` shows it: windows done and failed,
records fetched so far against what the census said the windows hold, and the time left
at the rate so far. Read from the window ledger's rows (store/sync_log_reports.py)."""

from __future__ import annotations

from tests.store_data import SMALL_EDMX
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.cli.status import _add_progress, render_status
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log_reports import run_progress
from trestle_tasks.sync.ledger import WindowLedger
from trestle_tasks.sync.model import RunPlan, Window


def listings(first: int, count: int) -> list[dict]:
    return [{"ListingKey": f"K{i}", "ModificationTimestamp": "2024-01-01T00:00:00Z"}
            for i in range(first, first + count)]


def test_status_shows_a_running_backfill_s_progress_and_time_left(
        store_target: StoreTarget) -> None:  # noqa: F811
    store = Store(store_target.engine, schema=store_target.schema)
    store.migrate(SMALL_EDMX, ["Property"])
    plan = RunPlan(run_id="run-1", resource="Property", key_field="ListingKey",
                   lower_ticks=None, upper_ticks=10_000, lock_name="Property",
                   lock_owner="run-1", fence=1,
                   windows=tuple(Window(i, i * 100 or None, (i + 1) * 100, 50)
                                 for i in range(3)))
    store.sync_log.open_run("run-1", "Property", windows_total=3)
    WindowLedger(store.engine, schema=store.schema).record_plan(plan)
    for window, count, status in ((plan.windows[0], 20, "succeeded"),
                                  (plan.windows[1], 10, "failed")):
        store.sync_log.start_window("run-1", "Property", window.window_id)
        store.upsert("Property", listings(window.index * 100, count), run_id="run-1",
                     window_id=window.window_id)
        store.sync_log.finish_window("run-1", "Property", window.window_id, status=status)

    progress = run_progress(store, [("run-1", "Property"), ("no-such-run", "Property")])
    assert list(progress) == [("run-1", "Property")]
    found = progress[("run-1", "Property")]
    assert (found.windows_total, found.windows_done, found.windows_failed) == (3, 1, 1)
    assert (found.fetched, found.expected) == (30, 150)
    assert found.left_s(60.0) == 240.0  # 120 records left at 30 a minute

    runs = [{"run_id": "run-1", "resource": "Property", "status": "running", "kind": "sync",
             "started_at": None, "fetched": 0, "upserted": 0, "rejected": 0,
             "api_requests": 0, "api_rate_limited": 0, "error": None,
             "open_for_s": 60.0, "planner": None}]
    _add_progress(store, runs)
    assert runs[0]["progress"]["percent"] == 20.0
    shown = render_status({"database": "db", "runs": runs, "watermarks": {}, "locks": []})
    assert ("windows 1/3 done (1 failed), 30 records fetched of ~150 (20 %), "
            "about 4 min 0 s left at this rate") in shown
