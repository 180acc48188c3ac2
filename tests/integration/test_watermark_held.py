"""A run that fetched everything but could not move its watermark is never a plain success.

finalize closes it `partial` with the reason (a run with a newer fence holds the
watermark), and everything that watches runs says so: `sync --local` exits 1, `status`
shows it, `trestle_runs_total{status="partial"}` counts it and the failed-run alert fires.
The whole-run retry leaves it alone. A watermark already at or beyond the run's upper
bound is no fault: such a run (a repeated finalize, say) still succeeds.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from tests.alert_receivers import HttpReceiver
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.cli.local import sync_local
from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import PARTIAL, SUCCEEDED, Watermark
from trestle_tasks.sync import local as local_mode
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.run_retry import run_retry_delay
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for

LOWER, UPPER = Watermark.parse("2026-01-01T00:00:00Z"), Watermark.parse("2026-01-02T00:00:00Z")


def planned_run(store: Store, lock: DatabaseRunLock, run_id: str = "run-1") -> RunPlan:
    """A run planned as plan_run would: lock taken, sync-log row open, one window."""
    grant = lock.acquire("Property", run_id, 60)
    assert grant is not None
    store.sync_log.open_run(run_id, "Property", watermark_from=LOWER.text,
                           watermark_to=UPPER.text)
    return RunPlan(run_id, "Property", "ListingKey", LOWER.ticks, UPPER.ticks,
                   (Window(0, LOWER.ticks, UPPER.ticks, 3),), "Property", run_id, grant.fence)


def all_succeeded(plan: RunPlan) -> list[WindowOutcome]:
    return [WindowOutcome(w.window_id, w.index, SUCCEEDED, fetched=3) for w in plan.windows]


def bump_watermark_fence(store: Store, resource: str, fence: int) -> None:
    """What a run with a newer fence leaves behind (an older version still writing time_ns
    fences during an upgrade, say): the watermark row carrying a fence above ours."""
    marks = bookkeeping(store.schema)["etl_watermark"]
    with store.engine.begin() as conn:
        conn.execute(sa.update(marks).where(marks.c.resource == resource).values(fence=fence))


def test_a_watermark_held_by_a_newer_fence_closes_the_run_partial_with_the_reason(
        store_target):  # noqa: F811
    store = Store(store_target.engine, schema=store_target.schema)
    store.evolve_bookkeeping()
    lock = DatabaseRunLock(store.engine, schema=store.schema)
    plan = planned_run(store, lock)
    newer = plan.fence + 40
    assert store.sync_log.advance_watermark("Property", LOWER, run_id="newer", fence=newer)

    run = finalize_run(plan, all_succeeded(plan), store=store, lock=lock)

    assert run.status == PARTIAL
    assert (f"it is held at {LOWER.text} by a run with a newer fence ({newer} > "
            f"{plan.fence})") in run.error
    assert run.details["watermark_advanced"] is False
    assert run.details["watermark_held_back"] is True
    assert store.sync_log.read_watermark("Property") == LOWER
    assert lock.holder("Property") is None  # released all the same
    # Every window succeeded: running it again would change nothing, so it is not retried.
    assert run_retry_delay(plan, run.status, all_succeeded(plan), base_delay_s=1) is None
    # A redelivered finalize returns the closed run unchanged.
    again = finalize_run(plan, all_succeeded(plan), store=store, lock=lock)
    assert (again.status, again.error, again.finished_at) == (run.status, run.error,
                                                              run.finished_at)


@pytest.mark.parametrize("stored_fence_offset", [-1, 0, 40])
def test_a_watermark_already_at_or_past_the_upper_bound_is_no_fault(
        store_target, stored_fence_offset):  # noqa: F811
    store = Store(store_target.engine, schema=store_target.schema)
    store.evolve_bookkeeping()
    lock = DatabaseRunLock(store.engine, schema=store.schema)
    plan = planned_run(store, lock)
    beyond = Watermark(UPPER.ticks + 10)
    store.sync_log.advance_watermark("Property", beyond, run_id="other",
                                    fence=plan.fence + stored_fence_offset)

    run = finalize_run(plan, all_succeeded(plan), store=store, lock=lock)

    assert run.status == SUCCEEDED and run.error is None
    assert run.details["watermark_advanced"] is False
    assert store.sync_log.read_watermark("Property") == beyond


@pytest.fixture
def hook():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.integration
def test_sync_local_says_so_everywhere_when_its_watermark_is_held(tmp_path, hook,
                                                                  monkeypatch):
    sim = start_simulator(records=120, seed=61)
    url, _ = create_database("sqlite", tmp_path)
    environment = dict(
        TRESTLE_CLIENT_ID=sim.client_id, TRESTLE_CLIENT_SECRET=sim.client_secret,
        TRESTLE_TOKEN_URL=sim.token_url, TRESTLE_BASE_URL=sim.odata_root,
        DATABASE_URL=url, LOCK_DIR=str(tmp_path), TRESTLE_RESOURCES="Property",
        ALERT_WEBHOOK_URL=hook.url("/alerts"))
    settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RESOURCES="Property",
                            ALERT_WEBHOOK_URL=hook.url("/alerts"))
    try:
        assert sync_local(LocalRuntime(settings), ["Property"])[0].run.status == SUCCEEDED
        sim.mutate("Property", count=5, seed=2)
        real_plan_run = local_mode.plan_run

        def plan_then_lose_the_watermark(*args, **kwargs):
            plan = real_plan_run(*args, **kwargs)
            bump_watermark_fence(factory.store(settings), "Property", plan.fence + 1000)
            return plan

        monkeypatch.setattr(local_mode, "plan_run", plan_then_lose_the_watermark)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        from trestle_tasks.cli.commands import main

        result = CliRunner().invoke(main, ["sync", "--local", "--resource", "Property"])
        monkeypatch.undo()

        assert result.exit_code == 1, result.output
        assert "partial" in result.output and "newer fence" in result.output
        store = factory.store(settings)
        run = store.sync_log.recent_runs(limit=1, resource="Property")[0]
        assert run.status == PARTIAL and run.records_fetched == 5
        # The failed/partial-run alert, with the reason.
        alerts = [body for _, body in hook.requests if body["kind"] == "run_failed"]
        assert len(alerts) == 1 and "newer fence" in alerts[0]["text"]
        # status, text and JSON.
        from trestle_tasks.cli.status import collect_status, render_status

        report = collect_status(ClusterRuntime(settings))
        text = render_status(report)
        assert "partial" in text and "newer fence" in text
        assert "newer fence" in json.dumps(report, default=str)
        # The metric.
        from trestle_tasks.monitoring.metrics import FeedSource, PipelineCollector

        registry = CollectorRegistry()
        registry.register(PipelineCollector({"default": FeedSource(lambda: store)}))
        exposition = generate_latest(registry).decode()
        assert ('trestle_runs_total{feed="default",resource="Property",status="partial"} 1.0'
                in exposition)
    finally:
        sim.stop()
