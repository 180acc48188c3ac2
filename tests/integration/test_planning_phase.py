"""Planning is a recorded, resumable phase: the run's row exists (`planning`, who) before
the first request; a failed plan is a `failed` row and frees the lock at once; a planner
that died is replaced under the same run id, and one that was replaced records nothing.

The use case itself (sync/plan.py `plan_run`) against the simulator over HTTP, on SQLite
and MariaDB; tests/integration/test_chaos_phases.py kills real workers mid-plan.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.core.errors import BadCredentialsError, LockLostError
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import FAILED, PLANNING, RUNNING
from trestle_tasks.sync.plan import Skipped, WindowSizing, plan_run
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, drop_database, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "mariadb"])
def world(request, tmp_path):
    sim = start_simulator(records=120, seed=23)
    url, name = create_database(request.param, tmp_path)
    settings = settings_for(sim, url, TRESTLE_RESOURCES="Property", TRESTLE_PAGE_SIZE="50")
    store = factory.store(settings)
    store.evolve_bookkeeping()
    try:
        yield sim, settings, store
    finally:
        store.dispose()
        factory._per_process.clear()
        sim.stop()
        if request.param != "sqlite":
            drop_database(request.param, name)


def plan(settings, store, run_id: str, *, prepare=None, client=None, lock=None,
         ttl_s: float = 60, take_over: bool = False):
    client = client or LocalRuntime(settings).trestle_client()
    lock = lock or DatabaseRunLock(store.engine, schema=store.schema)

    def prepared():
        if prepare is not None:
            prepare()
        ensure_tables(store, client, ["Property"])

    return plan_run("Property", store=store, client=client, lock=lock, lock_ttl_s=ttl_s,
                    sizing=WindowSizing(max_records=50, min_records=50, wanted=2),
                    run_id=run_id, planner="test planner", prepare=prepared,
                    watched={"attempt": 1, "feed": "default"}, take_over=take_over)


def served(sim) -> int:
    return sim.stats()["requests"].get(sim.client_id, {}).get("total", 0)


def test_the_row_exists_as_planning_before_the_first_request(world):
    sim, settings, store = world
    seen = {}

    def look():
        run = store.sync_log.get_run("run-a", "Property")
        holder = DatabaseRunLock(store.engine, schema=store.schema).holder("Property")
        seen.update(status=run.status, planner=run.details.get("planner"),
                    watched=run.details.get("watched"), requests=served(sim),
                    owner=holder.owner if holder else None)

    planned = plan(settings, store, "run-a", prepare=look)
    assert seen == {"status": PLANNING, "planner": "test planner",
                    "watched": {"attempt": 1, "feed": "default"}, "requests": 0,
                    "owner": "run-a"}
    assert not isinstance(planned, Skipped)
    run = store.sync_log.get_run("run-a", "Property")
    assert run.status == RUNNING
    assert run.windows_total == len(planned.windows) >= 2
    assert run.details["fence"] == planned.fence and "phase" not in run.details
    assert run.api_requests >= 1  # the census (and $metadata) counted with the run


def test_a_failed_plan_is_a_failed_row_and_frees_the_lock(world):
    sim, settings, store = world
    wrong = settings_for(sim, settings.database_url, TRESTLE_CLIENT_SECRET="not-the-secret",
                         TRESTLE_RESOURCES="Property")
    with pytest.raises(BadCredentialsError):
        plan(settings, store, "run-b", client=LocalRuntime(wrong).trestle_client())
    run = store.sync_log.get_run("run-b", "Property")
    assert run.status == FAILED and run.finished_at is not None
    assert "planning failed" in run.error and "BadCredentialsError" in run.error
    assert "not-the-secret" not in run.error
    assert DatabaseRunLock(store.engine, schema=store.schema).holder("Property") is None
    # The next trigger plans at once.
    assert not isinstance(plan(settings, store, "run-c"), Skipped)


def lapse(store) -> None:
    """The lock's lease ends now, as a dead planner's does a minute after its last beat."""
    locks = bookkeeping(store.schema)["etl_run_lock"]
    with store.engine.begin() as conn:
        conn.execute(sa.update(locks).where(locks.c.name == "Property").values(
            expires_at=datetime(2000, 1, 1, tzinfo=UTC)))


def test_a_dead_planner_is_replaced_under_the_same_run_id(world):
    _sim, settings, store = world
    lock = DatabaseRunLock(store.engine, schema=store.schema)
    # What a planner killed mid-census leaves: its lock and its `planning` row.
    dead = lock.acquire("Property", "run-d", 60)
    store.sync_log.begin_planning("run-d", "Property", {"phase": PLANNING, "planner": "gone",
                                                       "fence": dead.fence})
    # While its lease runs, a second delivery of the same run does not plan it twice.
    again = plan(settings, store, "run-d")
    assert isinstance(again, Skipped) and again.same_run
    lapse(store)
    planned = plan(settings, store, "run-d")
    assert not isinstance(planned, Skipped)
    assert planned.fence > dead.fence
    run = store.sync_log.get_run("run-d", "Property")
    assert run.status == RUNNING and run.details["planner"] == "test planner"
    # A third delivery finds the run's lock renewed by the run: it leaves the run alone.
    third = plan(settings, store, "run-d")
    assert isinstance(third, Skipped) and third.same_run
    assert store.sync_log.get_run("run-d", "Property").details["fence"] == planned.fence


def test_a_redelivery_after_its_planner_died_plans_at_once_under_the_same_grant(world):
    _sim, settings, store = world
    lock = DatabaseRunLock(store.engine, schema=store.schema)
    dead = lock.acquire("Property", "run-g", 60)
    store.sync_log.begin_planning("run-g", "Property", {"phase": PLANNING, "planner": "gone",
                                                       "fence": dead.fence})
    # RabbitMQ handed the dead worker's message back: no waiting for the lease to lapse.
    planned = plan(settings, store, "run-g", take_over=True)
    assert not isinstance(planned, Skipped) and planned.fence == dead.fence
    run = store.sync_log.get_run("run-g", "Property")
    assert run.status == RUNNING and run.details["planner"] == "test planner"
    # Had the first planner lived after all, it finds the run planned and leaves it,
    # and its lock, alone.
    again = plan(settings, store, "run-g", take_over=True)
    assert isinstance(again, Skipped) and again.same_run
    holder = lock.holder("Property")
    assert holder is not None and (holder.owner, holder.fence) == ("run-g", dead.fence)
    assert store.sync_log.get_run("run-g", "Property").windows_total == len(planned.windows)


def test_a_planner_replaced_while_slow_records_nothing(world):
    _sim, settings, store = world
    replaced = {}

    def stall_then_get_replaced():
        # This planner stalls past its lease; the watchdog's replacement plans the run.
        if replaced:
            return
        replaced["now"] = True
        lapse(store)
        replaced["plan"] = plan(settings, store, "run-e")

    with pytest.raises(LockLostError):
        plan(settings, store, "run-e", prepare=stall_then_get_replaced)
    winner = replaced["plan"]
    run = store.sync_log.get_run("run-e", "Property")
    assert run.status == RUNNING and run.details["fence"] == winner.fence
    assert run.windows_total == len(winner.windows)
    holder = DatabaseRunLock(store.engine, schema=store.schema).holder("Property")
    assert holder is not None and holder.fence == winner.fence


def test_one_replan_is_counted_when_two_watchdogs_see_it(world):
    _sim, _settings, store = world
    store.sync_log.begin_planning("run-f", "Property", {"phase": PLANNING, "watched": {}})
    assert store.sync_log.note_replan("run-f", "Property", 0)
    assert not store.sync_log.note_replan("run-f", "Property", 0)  # the other watchdog
    assert store.sync_log.get_run("run-f", "Property").details["replans"] == 1
    assert store.sync_log.note_replan("run-f", "Property", 1)
