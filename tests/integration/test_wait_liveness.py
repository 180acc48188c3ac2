"""`sync --wait` never waits on a run that cannot finish: with no worker alive it says so
within seconds; an open run whose lease nobody renews, with no watchdog to take it over, is
reported orphaned; a run the watchdog looks after is followed to its end; each resource is
told as it ends; a timeout during planning names the run's state.

`dispatch.wait_all` reads a real sync log (SQLite); what Redis would say of the workers and
the watchdog is a stand-in (`Seen`), the one piece of pure logic here. The last test runs
the real command against Redis with no worker at all.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from trestle_tasks.core.errors import FatalError
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import ABANDONED, PLANNING, RUNNING, SUCCEEDED
from trestle_tasks.worker import dispatch

from .conftest import start_simulator
from .test_celery_sync import clean_redis, mariadb_url, worker_env  # noqa: F401

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    workers: bool = True
    watchdog: bool = True
    owners: dict[str, str] = field(default_factory=dict)

    def workers_alive(self) -> bool:
        return self.workers

    def watchdog_alive(self) -> bool:
        return self.watchdog

    def lock_owner(self, resource: str) -> str | None:
        return self.owners.get(resource)


@pytest.fixture
def store(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'wait.sqlite3'}")
    store.evolve_bookkeeping()
    yield store
    store.dispose()


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(dispatch, "NO_WORKER_GRACE_S", 0.6)
    monkeypatch.setattr(dispatch, "ORPHAN_GRACE_S", 0.6)
    monkeypatch.setattr(dispatch, "_LIVENESS_EVERY_S", 0.1)


def sent(*resources: str, run_id: str = "run-1") -> dispatch.Dispatched:
    return dispatch.Dispatched(run_id, dict.fromkeys(resources, ""))


def test_no_worker_alive_is_said_within_seconds(store, quick):
    notes: list[str] = []
    started = time.monotonic()
    with pytest.raises(FatalError, match="no worker is running"):
        dispatch.wait(sent("Property"), store, timeout_s=3600, poll_s=0.05,
                      liveness=Seen(workers=False), on_note=notes.append)
    assert time.monotonic() - started < 3
    assert any("no worker is running" in n for n in notes)


def test_an_orphaned_run_without_a_watchdog_is_reported_not_waited_on(store, quick):
    store.sync_log.begin_planning("run-1", "Property", {"planner": "celery@gone pid 7"})
    ended: list[dispatch.Finished] = []
    started = time.monotonic()
    finished = dispatch.wait(sent("Property"), store, timeout_s=3600, poll_s=0.05,
                             liveness=Seen(watchdog=False), on_finished=ended.append)
    assert time.monotonic() - started < 3
    [only] = finished
    assert only.run.status == PLANNING
    assert "orphaned" in only.orphaned and "celery@gone pid 7" in only.orphaned
    assert "beat" in only.orphaned
    assert ended == finished


def test_a_run_the_watchdog_looks_after_is_followed_to_its_end(store, quick):
    store.sync_log.begin_planning("run-1", "Property", {"planner": "celery@gone pid 7"})
    seen = Seen(watchdog=True)


    def watchdog_closes_it():
        time.sleep(1.5)  # longer than the orphan grace: still followed meanwhile
        store.sync_log.close_run("run-1", "Property", status=ABANDONED,
                                 error="its planner died 4 times")

    closer = threading.Thread(target=watchdog_closes_it)
    closer.start()
    finished = dispatch.wait(sent("Property"), store, timeout_s=60, poll_s=0.05,
                             liveness=seen)
    closer.join()
    [only] = finished
    assert only.orphaned is None and only.run.status == ABANDONED


def test_each_resource_is_told_as_it_ends(store, quick):
    for resource in ("Property", "Member"):
        store.sync_log.open_run("run-1", resource)
    seen = Seen(owners={"Property": "run-1", "Member": "run-1"})
    told: list[tuple[str, float]] = []
    started = time.monotonic()


    def close(resource: str, after_s: float) -> None:
        time.sleep(after_s)
        store.sync_log.close_run("run-1", resource, status=SUCCEEDED)

    closers = [threading.Thread(target=close, args=("Member", 0.2)),
               threading.Thread(target=close, args=("Property", 1.5))]
    for closer in closers:
        closer.start()
    finished = dispatch.wait(sent("Property", "Member"), store, timeout_s=60, poll_s=0.05,
                             liveness=seen, on_finished=lambda f: told.append(
                                 (f.resource, time.monotonic() - started)))
    for closer in closers:
        closer.join()
    assert [f.resource for f in finished] == ["Property", "Member"]  # the order asked
    assert [r for r, _ in told] == ["Member", "Property"]  # the order they ended
    assert told[0][1] < 1.2  # Member was told before Property closed


def test_a_plan_no_worker_started_is_sent_again(store, quick, monkeypatch):
    """Its message went with a killed worker (Redis gives it back only hours later): the
    waiting command sends the plan again, under the same run id, and follows it."""
    monkeypatch.setattr(dispatch, "PLAN_RESEND_S", 0.5)
    resent: list[tuple[str, str]] = []

    def send_plan(resource, run_id, *, full, feed):
        resent.append((resource, run_id))
        store.sync_log.open_run(run_id, resource)  # the new message is planned...
        store.sync_log.close_run(run_id, resource, status=SUCCEEDED)  # ...and runs
        return "task-2"

    monkeypatch.setattr(dispatch, "send_plan", send_plan)
    notes: list[str] = []
    [only] = dispatch.wait(sent("Property"), store, timeout_s=30, poll_s=0.05,
                           liveness=Seen(), on_note=notes.append)
    assert resent == [("Property", "run-1")]
    assert only.run.status == SUCCEEDED
    assert any("sent again" in n for n in notes)


def test_a_timeout_while_planning_names_the_run_not_a_missing_worker(store, quick):
    store.sync_log.begin_planning("run-1", "Property", {"planner": "celery@busy pid 8"})
    with pytest.raises(FatalError) as raised:
        dispatch.wait(sent("Property"), store, timeout_s=1, poll_s=0.05,
                      liveness=Seen(owners={"Property": "run-1"}))
    text = str(raised.value)
    assert "no worker planned" not in text
    assert "still not finished after 1 s" in text and "planning" in text
    assert store.sync_log.get_run("run-1", "Property").status == PLANNING


def test_a_run_with_a_live_owner_is_never_called_orphaned(store, quick):
    store.sync_log.open_run("run-1", "Property", status=RUNNING)
    with pytest.raises(FatalError, match="still not finished"):
        dispatch.wait(sent("Property"), store, timeout_s=1.5, poll_s=0.05,
                      liveness=Seen(watchdog=False, owners={"Property": "run-1"}))


def test_sync_wait_with_no_worker_says_so_within_seconds(clean_redis, mariadb_url):  # noqa: F811
    sim = start_simulator(records=20, seed=3)
    waiting = None
    try:
        env = worker_env(sim, mariadb_url, TRESTLE_RESOURCES="Property")
        started = time.monotonic()
        waiting = subprocess.Popen([sys.executable, "-m", "trestle_tasks", "sync", "--wait"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        said = None
        for line in waiting.stderr:
            if "no worker is running" in line:
                said = time.monotonic() - started
                break
        # Within seconds, not silently for the 24 h default timeout. (That it then stops
        # is test_no_worker_alive_is_said_within_seconds, at a shorter grace.)
        assert said is not None and said < 15, said
    finally:
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
        sim.stop()
