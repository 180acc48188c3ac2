"""The fast path against the simulator over HTTP and a real database: a poll stores a
small delta at once and moves the watermark past it, an idle poll costs one request,
a large delta is left to a run, a busy resource is not touched, and a tick keeps one
sync log row per resource and hour."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.redis_space import redis_url
from trestle_tasks.cli.local import sync_local
from trestle_tasks.coordination.locks import lock_name
from trestle_tasks.monitoring.freshness import FreshnessRecorder
from trestle_tasks.sync.poll import BUSY, CHANGED, IDLE, TOO_MANY, new_poll_owner, poll_resource
from trestle_tasks.sync.poll_schedule import PollPolicy
from trestle_tasks.sync.poll_state import PollStateStore
from trestle_tasks.sync.poll_tick import TickServices, poll_log_id, poll_tick
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import canonical, create_database, drop_database, settings_for

pytestmark = pytest.mark.integration
RESOURCES = ["Property", "Office", "Media"]


@pytest.fixture(params=["sqlite", "mariadb"])
def synced(request, tmp_path):
    """A feed synced once (so it has a watermark), its runtime, and the simulator."""
    url, name = create_database(request.param, tmp_path)
    sim = start_simulator(records=120, seed=5)
    settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), REDIS_URL=redis_url(),
                            TRESTLE_RESOURCES=",".join(RESOURCES))
    runtime = LocalRuntime(settings)
    results = sync_local(runtime, RESOURCES)
    assert [r.run.status for r in results] == ["succeeded"] * len(RESOURCES)
    yield runtime, sim
    sim.stop()
    for key, value in list(factory._per_process.items()):
        if key[1] == f"store:{url}":
            value.dispose()
            factory._per_process.pop(key, None)
    drop_database(request.param, name)


def stored(runtime, resource):
    return {canonical(r) for r in runtime.store.records(resource)}


def served(sim, resource):
    return {canonical(r) for r in sim.records(resource)}


def requests_served(sim):
    return sum(client["total"] for client in sim.stats()["requests"].values())


def poll(runtime, resource="Property", **options):
    return poll_resource(resource, store=runtime.store, client=runtime.trestle_client(),
                         lock=runtime.run_lock(), log_run_id="poll-test", **options)


def test_a_small_delta_is_stored_at_once_with_its_photos(synced):
    runtime, sim = synced
    before = runtime.store.sync_log.read_watermark("Property")
    changed = sim.mutate("Property", count=4, seed=11)["modified"]

    outcome = poll(runtime, with_media=True)

    assert outcome.status == CHANGED
    assert outcome.fetched == 4 and outcome.upserted == 4
    assert outcome.requests >= 1
    assert stored(runtime, "Property") == served(sim, "Property")
    assert stored(runtime, "Media") == served(sim, "Media")  # photo sets that moved, inline
    after = runtime.store.sync_log.read_watermark("Property")
    assert after > before and outcome.watermark_to == after.text
    # Freshness: stamped a moment ago, committed now.
    assert len(outcome.latencies_s) == len(changed)
    assert all(-1 < latency < 30 for latency in outcome.latencies_s)


def test_an_idle_poll_costs_one_request_and_still_moves_the_watermark(synced):
    runtime, sim = synced
    before = runtime.store.sync_log.read_watermark("Office")
    sim.reset_stats()

    outcome = poll(runtime, "Office")

    assert outcome.status == IDLE and outcome.fetched == 0
    assert outcome.requests == 1
    assert requests_served(sim) == 1
    assert runtime.store.sync_log.read_watermark("Office") > before


def test_a_delta_larger_than_the_fast_path_is_stored_but_left_to_a_run(synced):
    runtime, sim = synced
    before = runtime.store.sync_log.read_watermark("Property")
    sim.mutate("Property", count=30, seed=12)

    outcome = poll(runtime, top=10, max_pages=2)

    assert outcome.status == TOO_MANY
    assert outcome.fetched == 20 and outcome.requests == 2
    assert outcome.watermark_to is None
    assert runtime.store.sync_log.read_watermark("Property") == before
    # What it fetched is stored; the run that follows gets the rest and ends equal.
    results = sync_local(runtime, ["Property"])
    assert results[0].run.status == "succeeded"
    assert stored(runtime, "Property") == served(sim, "Property")


def test_a_resource_held_by_a_run_is_not_polled(synced):
    runtime, sim = synced
    lock = runtime.run_lock()
    grant = lock.acquire(lock_name("Property"), owner="a-run", ttl_s=60)
    assert grant is not None
    sim.mutate("Property", count=2, seed=13)
    sim.reset_stats()
    try:
        outcome = poll(runtime)
    finally:
        lock.release(grant)
    assert outcome.status == BUSY and outcome.requests == 0
    assert requests_served(sim) == 0


def test_a_tick_polls_what_is_due_and_keeps_one_row_per_resource_and_hour(synced):
    runtime, sim = synced
    client = redis.Redis.from_url(redis_url())
    states = PollStateStore(client, runtime.credential_id)
    freshness = FreshnessRecorder(client, runtime.credential_id)
    escalated: list[str] = []
    services = TickServices(
        store=runtime.store, lock=runtime.run_lock(), new_client=runtime.trestle_client,
        states=states, record_freshness=freshness.record, record_clock=freshness.record_clock,
        escalate=escalated.append)
    # A budget this test never runs out of: budgeting has its own tests.
    policy = PollPolicy(budget_per_hour=3_600_000, floor_s=30)

    sim.mutate("Property", count=3, seed=14)
    first = poll_tick(RESOURCES, services, policy, with_media=lambda r: r == "Property")
    assert first is not None and {o.resource: o.status for o in first.outcomes} == {
        "Property": CHANGED, "Office": IDLE, "Media": IDLE}
    # Nothing is due again at once: the next tick polls nothing, and says when one is due.
    again = poll_tick(RESOURCES, services, policy)
    schedule = states.load()
    assert again is not None and again.outcomes == []
    soonest = min(s.due_at for s in schedule.resources.values())
    assert again.next_at is not None and again.next_at >= soonest > time.time()
    assert schedule.budget.allows(policy, again.next_at)
    sim.mutate("Property", count=2, seed=15)
    schedule = states.load()
    schedule.resources["Property"] = type(schedule.resources["Property"])(
        **{**schedule.resources["Property"].to_dict(), "due_at": 0.0})
    states.save(schedule)
    second = poll_tick(RESOURCES, services, policy, with_media=lambda r: r == "Property")
    assert second is not None and [o.status for o in second.outcomes] == [CHANGED]

    assert stored(runtime, "Property") == served(sim, "Property")
    assert escalated == []
    rows = [r for r in runtime.store.sync_log.recent_runs(limit=50)
            if r.run_id.startswith("poll-")]
    by_resource = {r.resource: r for r in rows}
    assert len(rows) == len(by_resource) == 3  # one row each, not one per poll
    property_row = by_resource["Property"]
    assert property_row.run_id.startswith(poll_log_id(property_row.started_at)[:13])
    assert property_row.status == "succeeded"
    assert property_row.records_fetched == 5
    assert property_row.details["polls"] == 2 and property_row.details[CHANGED] == 2
    assert property_row.api_requests >= 2
    recent = freshness.recent("Property")
    assert recent.samples == 5 and recent.p95_s is not None and recent.p95_s < 30
    # The simulator's Date header, on this machine's clock: they agree within its seconds.
    offset = freshness.clock()
    assert offset is not None and -3 < offset < 1


def test_freshness_reaches_status_and_the_metrics(synced):
    from prometheus_client import generate_latest

    from trestle_tasks.cli.metrics_http import build_registry
    from trestle_tasks.cli.status import collect_status, render_status
    from trestle_tasks.worker.runtime import ClusterRuntime

    runtime, _ = synced
    cluster = ClusterRuntime(runtime.settings)
    recorder = FreshnessRecorder(cluster.redis, cluster.credential_id)
    recorder.record("Property", [2.0, 4.0, 6.0, 8.0, 30.0, -1.5])

    report = collect_status(cluster)
    fresh = report["freshness"]["resources"]["Property"]
    assert fresh["samples"] == 6 and fresh["p50_s"] == 4.0 and fresh["p95_s"] == 30.0
    text = render_status(report)
    assert "Property   p50 4.0 s  p95 30.0 s  max 30.0 s  (6 records)" in text
    assert "Trestle's clock looks 1.5 s ahead of ours" in text
    assert "Office     no change stored in the last hour" in text
    recorder.record_clock(-42.4)  # as a Date header 42 s behind ours would leave it
    behind = render_status(collect_status(cluster))
    assert "Trestle's clock is about 42 s behind ours" in behind
    assert "set SYNC_SETTLE_SECONDS to 44 or more (now 0)" in behind

    exposed = generate_latest(build_registry({"default": cluster})).decode()
    assert ('trestle_freshness_seconds_bucket{feed="default",le="5.0",resource="Property"} 3.0'
            in exposed)
    assert ('trestle_freshness_seconds_count{feed="default",resource="Property"} 6.0'
            in exposed)


def test_an_incremental_run_s_windows_tell_the_freshness_of_what_they_store(synced):
    from trestle_tasks.sync.finalize import finalize_run
    from trestle_tasks.sync.plan import WindowSizing, plan_run
    from trestle_tasks.sync.window import sync_window

    runtime, sim = synced
    changed = sim.mutate("Property", count=5, seed=16)["modified"]
    lock = runtime.run_lock()
    plan = plan_run("Property", store=runtime.store, client=runtime.trestle_client(),
                    lock=lock, lock_ttl_s=60, sizing=WindowSizing(max_records=1000))
    told: list[list[float]] = []
    outcomes = [sync_window(plan, window, store=runtime.store, client=runtime.trestle_client(),
                            on_stored=told.append) for window in plan.windows]
    finalize_run(plan, outcomes, store=runtime.store, lock=lock)
    latencies = [latency for page in told for latency in page]
    assert len(latencies) == len(changed)
    assert all(-1 < latency < 30 for latency in latencies)


def test_a_run_waits_out_a_poll_holding_its_resource_but_not_another_run(synced):
    """A poll holds a resource for a request or three: a run started meanwhile (a manual
    `sync --full`) takes it once the poll lets go instead of being refused; a run held
    by another run is still refused at once."""
    runtime, sim = synced
    lock = runtime.run_lock()
    sim.mutate("Property", count=3, seed=17)
    held = lock.acquire(lock_name("Property"), owner=new_poll_owner(), ttl_s=60)
    assert held is not None
    releaser = threading.Timer(1.5, lambda: lock.release(held))
    releaser.start()
    started = time.monotonic()
    try:
        [result] = sync_local(runtime, ["Property"])
    finally:
        releaser.cancel()
    assert result.run.status == "succeeded", result.run.error
    assert time.monotonic() - started >= 1.4  # it waited for the poll, then ran
    assert stored(runtime, "Property") == served(sim, "Property")

    grant = lock.acquire(lock_name("Property"), owner="another-run", ttl_s=60)
    assert grant is not None
    try:
        started = time.monotonic()
        [result] = sync_local(runtime, ["Property"])
        assert time.monotonic() - started < 5
        assert result.skipped is not None and result.run is None
        assert "another-run" in result.skipped.reason
    finally:
        lock.release(grant)
