"""Chaos property: kill -9 of the worker doing any phase, at any moment, on both brokers.

With beat running and the product's default settings (but for the two leases, at their
shortest: see below), a worker killed (SIGKILL of its whole process group) while it plans
a run, walks a window, refreshes photo sets, finalizes a run (or builds the indexes a
first load deferred), reconciles or refreshes `$metadata` must not matter: every time,
the `trestle-etl sync --wait` that follows the work ends with exit 0 and its runs
succeeded within 180 s of the kill, and the database ends equal to the simulator's feed.

Hypothesis draws the phase, the broker (Redis or RabbitMQ) and the moment (a fraction of
the phase's nominal length, after the phase is seen to start in the victim's log). Each
example builds everything afresh: a MariaDB database, a simulator, the Celery database
(tests/redis_space.py, which also makes the Celery tests take turns), beat and two
workers, each worker logging JSON lines to a folder of its own, so the log that shows the
phase starting names the victim. Fresh processes per example rather than one cluster
reused: workers read the database and the simulator from their environment, and a killed
cluster's leftovers in Redis (locks, gate slots, worker announcements) must not leak into
the next example; start-up costs a few seconds of an example's one to two minutes.

How each phase is made long enough to be hit, without any test-only code in the product:
the simulator's `extra_latency_ms` holds chosen requests (planning's census, `$metadata`,
the Media fetches of a photo-set refresh, reconcile's census); finalize is held by a row
lock the test takes on the watermark (`SELECT … FOR UPDATE`, released right after the
kill), the index build by the metadata lock of a transaction that read the table. An
example whose kill missed its phase (the victim's log shows the phase's end, or never its
start) is rejected, not counted.

Examples: in CI (HYPOTHESIS_PROFILE=ci) the explicit rows only, one per phase on
alternating brokers (about 3 minutes with the short leases, 5 to 6 with the defaults);
set CHAOS_EXAMPLES=N to draw N more (each costs one to three minutes). No shrinking: an
example takes minutes, and the failing one is printed as it is.

The leases: the run lock's (SYNC_LOCK_TTL) and a window's heartbeat (SYNC_WINDOW_STALE_
SECONDS) only set how long a dead worker's claim is honoured before the watchdog (every
30 s) or a redelivery acts on it, so most of a default example's recovery is waiting them
out (a minute, 40 s). The examples run them at their shortest (30 s, 10 s): the same
repairs by the same paths, about half a minute sooner each. CHAOS_LEASES=default runs the
product's defaults (what the recovery figures in the README were measured with).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, note, settings
from hypothesis import strategies as st

from trestle_tasks.core.settings import load_settings
from trestle_tasks.worker import factory

from .chaos_cluster import (
    BROKERS,
    Cluster,
    Line,
    broker_env,
    cluster_env,
    run_to_end,
    send_task,
    table_read_held,
    trestle_etl,
    watermark_row_locked,
)
from .conftest import start_simulator
from .sync_fixtures import create_database, drop_database
from .test_celery_sync import assert_equal_to_feed, dispatched_run_id

pytestmark = pytest.mark.integration

RECOVERY_LIMIT_S = 180.0  # the property: `sync --wait` done this long after the kill
RECOVERY_AIM_S = 90.0  # printed beside each figure; not asserted
EXTRA_EXAMPLES = int(os.environ.get("CHAOS_EXAMPLES", "0"))
PHASES = ("planning", "window", "media", "finalize", "reconcile", "metadata", "indexes")
# CHAOS_PHASES=planning,finalize: only those phases (explicit rows and draws), by hand.
CHOSEN = tuple(p for p in os.environ.get("CHAOS_PHASES", ",".join(PHASES)).split(",") if p)
# CHAOS_BROKER=rabbitmq: every example on that broker (the rows alternate otherwise).
ONLY_BROKER = os.environ.get("CHAOS_BROKER")
# The shortest leases the settings allow (see the module's docstring); CHAOS_LEASES=default
# leaves both at the product's defaults.
SHORT_LEASES = {"SYNC_LOCK_TTL": "30", "SYNC_WINDOW_STALE_SECONDS": "10"}
LEASES = {} if os.environ.get("CHAOS_LEASES") == "default" else SHORT_LEASES


@dataclass(frozen=True)
class Scenario:
    """How one phase is set up, started, seen in a log and held long enough to be hit."""

    phase: str
    resources: str  # TRESTLE_RESOURCES
    records: int
    nominal_s: float  # the phase's expected length once seen starting: moment = f x this
    extra_latency_ms: dict[str, float] = field(default_factory=dict)  # armed before trigger
    env: dict[str, str] = field(default_factory=dict)
    first_sync: bool = True  # a full sync before the trigger (tables, data, a watermark)
    mutate: int = 0  # Property records changed in the feed before the trigger
    empty_expand: bool = False  # `$expand=Media` answers [] (the photo sets asked again)
    task: str | None = None  # a task sent to the workers instead of `sync --wait`


SCENARIOS = {s.phase: s for s in (
    # A first (full) sync of a fresh database: planning reads $metadata, creates the
    # tables and takes a census, held 8 s.
    Scenario("planning", "Property", 1500, nominal_s=9.0,
             extra_latency_ms={"census": 8000}, first_sync=False),
    # The same first sync, cut into ~3 windows of ~500 records walked 1 s a page.
    Scenario("window", "Property", 2000, nominal_s=3.0,
             extra_latency_ms={"Property": 700}, env={"SYNC_WINDOW_SIZE": "700"},
             first_sync=False),
    # An incremental run with new photo sets whose inline expansions came back empty: the
    # window's refresh asks for them, 3 s a Media request.
    Scenario("media", "Property,Media", 300, nominal_s=3.5,
             extra_latency_ms={"Media": 3000}, mutate=60, empty_expand=True),
    # An incremental run; its finalize waits on the test's row lock of the watermark.
    Scenario("finalize", "Property", 1000, nominal_s=4.0,
             extra_latency_ms={"Property": 1000}, mutate=250),
    # A reconcile finding 100 stale records: census held 6 s, its repair 1.3 s a request.
    Scenario("reconcile", "Property", 1500, nominal_s=8.0,
             extra_latency_ms={"census": 6000, "Property": 1000}, mutate=100,
             task="trestle.reconcile"),
    # `trestle.refresh_metadata`, its `$metadata` read held 6 s, then the migration.
    Scenario("metadata", "Property", 1000, nominal_s=7.0,
             extra_latency_ms={"$metadata": 6000}, mutate=30,
             task="trestle.refresh_metadata"),
    # A first load's finalize building the indexes its planning deferred: the ALTER TABLE
    # waits on the metadata lock of the test's open transaction that read the table.
    # (The simulator's records are narrow: deferral asked for, not left to auto.)
    Scenario("indexes", "Property", 1500, nominal_s=4.0, first_sync=False,
             env={"STORE_DEFER_INDEXES": "true"}),
)}


@dataclass
class Outcome:
    phase: str
    broker: str
    moment: float
    hit: bool
    recovery_s: float | None = None
    detail: str = ""


def of_run(run_id: str, phase: str, event: str) -> Callable[[Line], bool]:
    return lambda line: (line.get("phase") == phase and line.get("event") == event
                         and line.get("run_id") == run_id)


def task_line(task_id: str, word: str) -> Callable[[Line], bool]:
    """Celery's own worker lines: "Task <name>[<id>] received" / "… succeeded in …"."""
    return lambda line: f"[{task_id}]" in str(line.get("message", "")) and \
        word in str(line.get("message", ""))


class Example:
    """One example: fresh database, simulator, Celery database, beat and two workers."""

    def __init__(self, scenario: Scenario, broker: str, folder: Path) -> None:
        self.scenario, self.broker, self.folder = scenario, broker, folder

    def run(self, moment: float) -> Outcome:
        scenario = self.scenario
        url, name = create_database("mariadb", self.folder)
        sim = start_simulator(records=scenario.records, seed=41, minute_quota=None,
                              latency_ms_per_request=300)
        try:
            with broker_env(self.broker) as broker:
                env = cluster_env(sim, url, broker, TRESTLE_RESOURCES=scenario.resources,
                                  **{**LEASES, **scenario.env})
                cluster = Cluster(env, self.folder / "cluster")
                try:
                    return self._run(cluster, env, sim, url, moment)
                finally:
                    started = time.monotonic()
                    cluster.stop()
                    factory._per_process.clear()
                    _slow("stopping the cluster", started)
        finally:
            started = time.monotonic()
            sim.stop()
            drop_database("mariadb", name)
            _slow("dropping the simulator and the database", started)

    def _run(self, cluster: Cluster, env: dict[str, str], sim, url: str,
             moment: float) -> Outcome:
        scenario = self.scenario
        cluster.start_beat()
        workers = [cluster.start_worker("one", 1), cluster.start_worker("two", 2)]
        cluster.wait_ready(workers)
        if scenario.first_sync:
            first = trestle_etl(env, "sync", "--wait", "--full", "--timeout", "240")
            code, out, err = run_to_end(first, time.monotonic() + 240)
            assert code == 0, f"the first sync failed ({code}): {out}{err}"
        if scenario.mutate:
            sim.mutate("Property", count=scenario.mutate, seed=5)
        sim.configure(extra_latency_ms=scenario.extra_latency_ms,
                      **({"rate_empty_expand": 1.0} if scenario.empty_expand else {}))

        delay = moment * scenario.nominal_s
        waiting = None
        row = RowHold(url)
        try:
            if scenario.task is None:
                waiting = trestle_etl(env, "sync", "--wait", "--timeout", "400")
                run_id = dispatched_run_id(waiting, timeout_s=60)
                victim, started, ended = self._sync_phase(cluster, run_id, row)
            else:
                args = ("Property",) if scenario.task == "trestle.reconcile" else ()
                task_id = send_task(env, scenario.task, args)
                victim, started, ended = self._task_phase(cluster, task_id)
            time.sleep(delay)
            killed_at = cluster.kill(victim)
        finally:
            row.release()
        replacement = cluster.start_worker("replacement", 2)

        lines = victim.lines()
        hit = any(started(line) for line in lines) and not any(ended(line) for line in lines)
        outcome = Outcome(scenario.phase, self.broker, moment, hit)
        if not hit:
            if waiting is not None:
                waiting.kill()
                waiting.communicate()
            outcome.detail = "the kill missed the phase"
            return outcome
        cluster.wait_ready([replacement])
        deadline = killed_at + RECOVERY_LIMIT_S
        if waiting is None:
            code, out, err, attempts = _sync_until_not_skipped(env, deadline)
            outcome.detail = f"sync --wait attempts: {attempts}"
        else:
            code, out, err = run_to_end(waiting, deadline)
        recovered = time.monotonic() - killed_at
        assert code is not None, (
            f"{scenario.phase} on {self.broker}: `sync --wait` still running "
            f"{RECOVERY_LIMIT_S:.0f} s after the kill ({outcome.detail}); its output so "
            f"far: {out}{err}; {_state(env)}")
        assert code == 0, (f"{scenario.phase} on {self.broker}: exit {code} "
                           f"{recovered:.0f} s after the kill ({outcome.detail}): {out}{err}; "
                           f"{_state(env)}")
        assert "succeeded" in out, out + err
        outcome.recovery_s = recovered
        sim.configure(extra_latency_ms={}, rate_empty_expand=0.0)
        assert_equal_to_feed(env, sim, scenario.resources.split(","))
        return outcome

    def _sync_phase(self, cluster: Cluster, run_id: str, row: RowHold):
        phase = self.scenario.phase
        if phase == "planning":
            worker, _ = cluster.find(of_run(run_id, "plan", "start"), 60, "planning's start")
            return worker, of_run(run_id, "plan", "start"), of_run(run_id, "plan", "end")
        if phase == "window":
            worker, line = cluster.find(of_run(run_id, "window", "start"), 90,
                                        "a window's start")
            window = line.get("window")
            return (worker, lambda x: of_run(run_id, "window", "start")(x)
                    and x.get("window") == window,
                    lambda x: of_run(run_id, "window", "end")(x) and x.get("window") == window)
        if phase == "media":
            def refresh(event: str) -> Callable[[Line], bool]:
                return lambda x: (x.get("media_refresh") == event
                                  and x.get("run_id") == run_id)
            worker, _ = cluster.find(refresh("start"), 90, "a photo-set refresh's start")
            return worker, refresh("start"), refresh("end")
        if phase == "finalize":
            cluster.find(of_run(run_id, "window", "start"), 90, "the run's window start")
            row.take()
            worker, _ = cluster.find(of_run(run_id, "finalize", "start"), 120,
                                     "finalize's start")
            return (worker, of_run(run_id, "finalize", "start"),
                    of_run(run_id, "finalize", "end"))
        if phase == "indexes":
            cluster.find(of_run(run_id, "window", "start"), 90, "the run's window start")
            row.take(table_read_held(row.url, "property"))

            def build(event: str) -> Callable[[Line], bool]:
                return lambda x: x.get("index_build") == event and x.get("run_id") == run_id
            worker, _ = cluster.find(build("start"), 120, "the index build's start")
            return worker, build("start"), build("end")
        raise AssertionError(phase)

    def _task_phase(self, cluster: Cluster, task_id: str):
        if self.scenario.phase == "reconcile":
            worker, line = cluster.find(
                lambda x: x.get("phase") == "reconcile" and x.get("event") == "start", 60,
                "reconcile's start")
            run_id = line["run_id"]
            return (worker, of_run(run_id, "reconcile", "start"),
                    of_run(run_id, "reconcile", "end"))
        worker, _ = cluster.find(task_line(task_id, "received"), 60,
                                 "refresh_metadata received")
        return worker, task_line(task_id, "received"), task_line(task_id, "succeeded")


class RowHold:
    """For finalize: the watermark row locked (FOR UPDATE) by the test once the run's window
    is walking (planning reads the row for its lock's fence, so not before), so that the
    run's finalize waits in its watermark update until `release`, right after the kill.
    For the index build: the table read in a transaction left open, the same way."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._held: Any = None
        self._release: Callable[[], None] = lambda: None

    def take(self, hold: Any = None) -> None:
        self._held = hold if hold is not None else watermark_row_locked(self.url, "Property")
        self._release = self._held.__enter__()

    def release(self) -> None:
        self._release()


def _slow(what: str, since: float) -> None:
    if (took := time.monotonic() - since) > 10:
        print(f"\nchaos: {what} took {took:.0f} s")


def _sync_until_not_skipped(env: dict[str, str], deadline: float):
    """`sync --wait` after a killed task: a trigger skipped because the killed task's run
    lock is still held is tried again 5 s later, as the next beat interval would, until
    the deadline. Returns (exit code or None, stdout, stderr, attempts)."""
    attempts = 0
    while True:
        attempts += 1
        code, out, err = run_to_end(trestle_etl(env, "sync", "--wait", "--timeout", "400"),
                                    deadline)
        if code != 3 or time.monotonic() + 5 > deadline:
            return code, out, err, attempts
        time.sleep(5)


def _state(env: dict[str, str]) -> str:
    """What the database says, for a failure's message: recent runs and the run lock."""
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    try:
        runs = [(r.run_id, r.status, (r.details or {}).get("kind"), r.error)
                for r in store.sync_log.recent_runs(limit=6, resource="Property")]
        holder = factory.run_lock(settings).holder("Property")
        return f"runs {runs}; Property lock {holder}"
    except Exception as error:
        return f"(state unreadable: {error!r})"
    finally:
        store.dispose()
        factory._per_process.clear()


def _rows() -> list[tuple[str, str, float]]:
    """One explicit row per phase, brokers alternating, moments mid-phase."""
    brokers = (ONLY_BROKER,) * 7 if ONLY_BROKER else ("redis", "rabbitmq") * 3 + ("redis",)
    moments = (0.5, 0.3, 0.3, 0.4, 0.4, 0.3, 0.5)
    return [row for row in zip(PHASES, brokers, moments, strict=True) if row[0] in CHOSEN]


def chaos_property(folder: Path, outcomes: list[Outcome]):
    def run_one(phase: str, broker: str, moment: float) -> None:
        where = folder / f"{len(outcomes):02d}-{phase}-{broker}"
        where.mkdir(parents=True)
        try:
            outcome = Example(SCENARIOS[phase], broker, where).run(moment)
        except AssertionError:
            print(f"\nchaos: phase={phase} broker={broker} moment={moment:.2f} FAILED")
            outcomes.append(Outcome(phase, broker, moment, True, None, "failed"))
            raise
        outcomes.append(outcome)
        recovery = (f"{outcome.recovery_s:.0f} s" if outcome.recovery_s is not None
                    else "not counted (" + outcome.detail + ")")
        print(f"\nchaos: phase={phase} broker={broker} moment={moment:.2f} "
              f"recovery={recovery} (aim {RECOVERY_AIM_S:.0f} s) {outcome.detail}")
        note(f"{phase} on {broker} at {moment:.2f}: {recovery}")
        assume(outcome.hit)

    test = given(phase=st.sampled_from(CHOSEN), broker=st.sampled_from(
                     (ONLY_BROKER,) if ONLY_BROKER else BROKERS),
                 moment=st.floats(0.05, 0.9))(run_one)
    for phase, broker, moment in reversed(_rows()):
        test = example(phase=phase, broker=broker, moment=moment)(test)
    return settings(
        max_examples=max(EXTRA_EXAMPLES, 1),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=([Phase.explicit, Phase.reuse, Phase.generate] if EXTRA_EXAMPLES
                else [Phase.explicit]),
    )(test)


@pytest.mark.celery_database  # each example takes it (chaos_cluster.broker_env)
@pytest.mark.timeout(1500 + 300 * EXTRA_EXAMPLES)
def test_a_worker_killed_in_any_phase_loses_nothing(tmp_path):
    outcomes: list[Outcome] = []
    chaos_property(tmp_path, outcomes)()
    # The explicit rows must really have hit every phase (a rejected row is not counted).
    hit = {o.phase for o in outcomes if o.hit}
    assert hit >= set(CHOSEN), f"phases never hit: {sorted(set(CHOSEN) - hit)}"
