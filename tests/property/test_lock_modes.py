"""Property: local-mode and cluster-mode runs on one database take turns, in any order.

`sync --local` and the Celery workers share the run lock in the database, and its fences
order them. Any interleaving of their phases (plan, walk the windows, finalize), with the
feed changing in between and leases lapsing (a paused process), starting from a database
whose watermark was fenced by the old file lock or not:
- a run planned while another holds the lock is skipped, and says so in the sync log;
- a run whose lapsed lease another run took never moves the watermark; a run that kept
  its lease, or whose lapsed lease nobody took (it resumes it), always does;
- the watermark only moves forward, and fences only grow;
- afterwards one run brings every change in the feed, and an idle run fetches nothing.
The phases are the use cases themselves (what the tasks and `sync_local` call), driven
step by step against the simulator over HTTP, SQLite, and Redis for the cluster's quota
limiter; tests/integration/test_celery_sync.py does the same through real workers.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import start_simulator
from tests.integration.sync_fixtures import canonical, create_database, settings_for
from tests.redis_space import redis_url
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import FAILED, SKIPPED, SUCCEEDED, Watermark
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.model import RunPlan, WindowOutcome
from trestle_tasks.sync.plan import Skipped, WindowSizing, plan_run
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.sync.window import sync_window
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

pytestmark = pytest.mark.integration
RESOURCE = "Property"
MODES = ("local", "cluster")


@dataclass
class Run:
    plan: RunPlan
    mode: str
    outcomes: list[WindowOutcome] | None = None
    lapsed: bool = False
    taken_over: bool = False  # lapsed, then another run took the lock
    finalized: bool = False


@pytest.fixture(scope="module")
def world():
    sim = start_simulator(records=150, seed=71)
    folder = Path(tempfile.mkdtemp(prefix="lock-modes-"))
    url, _ = create_database("sqlite", folder)
    config = settings_for(sim, url, LOCK_DIR=str(folder), TRESTLE_PAGE_SIZE="50",
                          SYNC_WINDOW_SIZE="100", TRESTLE_RESOURCES=RESOURCE,
                          REDIS_URL=redis_url())
    factory.store(config).evolve_bookkeeping()  # the first example reads the watermark
    yield sim, config
    sim.stop()


class Driver:
    """Runs the phases of each run as the tasks (cluster) or sync_local (local) would."""

    def __init__(self, sim, config) -> None:
        self.sim, self.config = sim, config
        self.store = factory.store(config)
        self.lock = factory.run_lock(config)
        self.runs: list[Run] = []
        self.fences: list[int] = []

    def client(self, mode: str):
        runtime = ClusterRuntime if mode == "cluster" else LocalRuntime
        return runtime(self.config).trestle_client()

    def live(self) -> Run | None:
        return next((r for r in self.runs if not r.finalized and not r.lapsed), None)

    def start(self, mode: str) -> Run | None:
        client = self.client(mode)
        holder = self.live()
        planned = plan_run(RESOURCE, store=self.store, client=client, lock=self.lock,
                           lock_ttl_s=60,
                           sizing=WindowSizing(max_records=self.config.window_size),
                           prepare=lambda: ensure_tables(self.store, client, [RESOURCE]))
        if holder is not None:
            # Two overlapping runs: the second is skipped, and the sync log says so.
            assert isinstance(planned, Skipped), "a second run got the lock"
            logged = self.store.sync_log.get_run(planned.run_id, RESOURCE)
            assert logged.status == SKIPPED and holder.plan.run_id in logged.error
            return None
        assert not isinstance(planned, Skipped), planned.reason
        assert all(planned.fence > fence for fence in self.fences)
        for earlier in self.pending():
            earlier.taken_over = earlier.taken_over or earlier.lapsed
        self.fences.append(planned.fence)
        run = Run(planned, mode)
        self.runs.append(run)
        return run

    def walk(self, run: Run) -> None:
        if run.outcomes is None:
            run.outcomes = [sync_window(run.plan, window, store=self.store,
                                        client=self.client(run.mode),
                                        page_size=self.config.page_size)
                            for window in run.plan.windows]

    def finish(self, run: Run) -> None:
        self.walk(run)
        before = self.store.sync_log.read_watermark(RESOURCE)
        closed = finalize_run(run.plan, run.outcomes, store=self.store, lock=self.lock)
        run.finalized = True
        after = self.store.sync_log.read_watermark(RESOURCE)
        if run.taken_over:
            # Its lease lapsed and another run took the lock: it must not move the
            # watermark behind its successor's back.
            assert closed.status == FAILED and after == before
        else:
            assert closed.status == SUCCEEDED, closed.error
            assert after is not None and after >= Watermark(run.plan.upper_ticks)

    def lapse(self) -> None:
        """The live run's process pauses past its lease (the lease is the database's)."""
        run = self.live()
        if run is None:
            return
        locks = bookkeeping(self.store.schema)["etl_run_lock"]
        with self.store.engine.begin() as conn:
            conn.execute(sa.update(locks).where(locks.c.name == run.plan.lock_name).values(
                expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
        run.lapsed = True

    def pending(self) -> list[Run]:
        return [r for r in self.runs if not r.finalized]


steps = st.lists(st.one_of(
    st.tuples(st.just("start"), st.sampled_from(MODES)),
    st.tuples(st.just("walk"), st.integers(0, 3)),
    st.tuples(st.just("finish"), st.integers(0, 3)),
    st.tuples(st.just("change"), st.integers(1, 8)),
    st.tuples(st.just("lapse"), st.just(0)),
), min_size=1, max_size=10)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow])
@given(steps=steps, legacy_fence=st.booleans(), final_mode=st.sampled_from(MODES),
       seed=st.integers(0, 10_000))
def test_local_and_cluster_runs_take_turns_in_any_interleaving(world, steps, legacy_fence,
                                                               final_mode, seed):
    sim, config = world
    driver = Driver(sim, config)
    if legacy_fence:
        # A database last synced by the old `sync --local`: its file lock fenced with time_ns.
        marks = bookkeeping(driver.store.schema)["etl_watermark"]
        with driver.store.engine.begin() as conn:
            conn.execute(sa.update(marks).values(fence=time.time_ns()))
    marks_seen = [driver.store.sync_log.read_watermark(RESOURCE)]
    for number, (action, arg) in enumerate(steps):
        pending = driver.pending()
        if action == "start":
            driver.start(arg)
        elif action == "walk" and pending:
            driver.walk(pending[arg % len(pending)])
        elif action == "finish" and pending:
            driver.finish(pending[arg % len(pending)])
        elif action == "change":
            sim.mutate(RESOURCE, count=arg, seed=seed + number)
        elif action == "lapse":
            driver.lapse()
        marks_seen.append(driver.store.sync_log.read_watermark(RESOURCE))
    for run in driver.pending():
        driver.finish(run)
    marks_seen.append(driver.store.sync_log.read_watermark(RESOURCE))
    present = [m for m in marks_seen if m is not None]
    assert present == sorted(present), "the watermark moved backwards"
    if present:  # once set, never gone again
        assert None not in marks_seen[marks_seen.index(present[0]):]

    # One more run brings every change; an idle one after it fetches nothing.
    catch_up = driver.start(final_mode)
    driver.finish(catch_up)
    stored = {canonical(r) for r in driver.store.records(RESOURCE)}
    assert stored == {canonical(r) for r in sim.records(RESOURCE)}
    idle = driver.start(MODES[1 - MODES.index(final_mode)])
    driver.finish(idle)
    idle_run = driver.store.sync_log.get_run(idle.plan.run_id, RESOURCE)
    assert idle_run.records_fetched == 0 and idle_run.status == SUCCEEDED
