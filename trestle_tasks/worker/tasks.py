"""Celery tasks: thin wrappers that build collaborators from settings and call a use case.

Retry policy is decided here and only here (what is retriable is decided once, in
errors.is_retriable). Task arguments are run ids, resource names, one window's bounds and
the plan's header — never credentials (Flower shows arguments). A run's windows are handed
out from the window ledger in the database (sync/ledger.py, handout.py), not sent
as a chord: see `sync_window_task` and the watchdog, `watch_runs`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from trestle_tasks.coordination import presence, worker_slots
from trestle_tasks.coordination.concurrency import SlotLease, window_pressure
from trestle_tasks.coordination.heartbeat import WindowHeartbeat
from trestle_tasks.coordination.job_lease import JobLease, take_orphaned
from trestle_tasks.coordination.locks import LockGrant, lock_name
from trestle_tasks.coordination.triggers import claim_interval, interval_owner
from trestle_tasks.core.errors import (
    LockLostError,
    NoProgressError,
    WindowSupersededError,
    is_retriable,
)
from trestle_tasks.core.feeds import DEFAULT_FEED
from trestle_tasks.core.logs import log_context
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.core.settings import Settings
from trestle_tasks.monitoring.freshness import FreshnessRecorder
from trestle_tasks.store.sync_log import ABANDONED, FAILED, PLANNING, RUNNING
from trestle_tasks.sync import delivery
from trestle_tasks.sync.delivery import Senders
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.handout import slot_holder
from trestle_tasks.sync.ledger import (
    GAVE_UP,
    RUN,
    WindowLedger,
)
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.plan import (
    Skipped,
    WindowSizing,
    new_run_id,
    plan_run,
    record_skip,
    this_process,
)
from trestle_tasks.sync.poll import CHANGED as POLL_CHANGED
from trestle_tasks.sync.poll import IDLE as POLL_IDLE
from trestle_tasks.sync.poll_schedule import DEFAULT_HOUR_QUOTA, PollPolicy
from trestle_tasks.sync.poll_state import PollStateStore
from trestle_tasks.sync.poll_tick import POLL_TICK_WORK_S, TickServices, poll_tick
from trestle_tasks.sync.reconcile import reconcile
from trestle_tasks.sync.schema import ensure_tables, migrate_from_service
from trestle_tasks.sync.window import media_since, sync_window
from trestle_tasks.worker import alert_hooks as alerts
from trestle_tasks.worker.celery_app import app
from trestle_tasks.worker.celery_settings import (
    POLL_TICK_S,
    WINDOW_HARD_LIMIT_S,
    WINDOW_SOFT_LIMIT_S,
)
from trestle_tasks.worker.runtime import ClusterRuntime, cluster_runtime, cluster_runtimes
from trestle_tasks.worker.task_retry import RetryingTask

if TYPE_CHECKING:
    from trestle_tasks.coordination.concurrency import RedisWindowGate
    from trestle_tasks.store.store import Store

log = logging.getLogger(__name__)


class _TaskRequest(Protocol):
    retries: int


class BoundTask(Protocol):
    """What a task made with `bind=True` reads of itself (Celery ships no types)."""

    request: _TaskRequest
    max_retries: int  # Celery's None ("no limit") is set on no task here


# A reconcile that found every window slot taken is sent again this much later.
RECONCILE_SLOT_WAIT_S = 60.0


@app.task(name="trestle.plan_sync", bind=True, soft_time_limit=900, time_limit=1200)
def plan_sync(self: BoundTask, resource: str, full: bool = False, run_id: str | None = None,
              beat_interval_s: float | None = None, attempt: int = 1,
              feed: str = DEFAULT_FEED) -> dict[str, Any]:
    """Plan a run of `resource`, keep the plan in the database and hand out its first
    windows (as many as the window gate has slots for).

    Safe to run twice for one run id (a redelivery, the watchdog replacing a planner that
    died): a run already planned or closed is left alone. Not retried by Celery: the
    client already spent its retry budget on whatever failed, and a failed plan is a
    `failed` row that the next trigger, `status` and the alerts see.
    Beat passes `beat_interval_s`: such a trigger first claims its interval, so a second
    beat started by mistake cannot double the runs.
    """
    run_id = run_id or new_run_id()
    with log_context(run_id=run_id, resource=resource, feed=feed):
        try:
            return _plan_sync(cluster_runtime(feed), resource, full, run_id, beat_interval_s,
                              attempt, planner=_this_worker(self),
                              redelivered=_redelivered(self))
        except LockLostError:
            raise  # another delivery plans this run now: nothing to tell anyone
        except Exception as error:
            with suppress(Exception):  # bad settings: the original error tells more
                alerts.after_crash(cluster_runtime(feed), resource, error)
            raise


def _redelivered(task: BoundTask) -> bool:
    """The broker handed this message back after the worker that had it died (RabbitMQ
    does so at once; Redis only after its visibility timeout)."""
    info = getattr(task.request, "delivery_info", None) or {}
    return bool(info.get("redelivered"))


def _this_worker(task: BoundTask) -> str:
    hostname = getattr(task.request, "hostname", None)
    return f"{hostname} pid {os.getpid()}" if hostname else this_process("worker")


def cluster_sizing(runtime: ClusterRuntime) -> WindowSizing:
    """A run cut for the cluster: one window per window slot, as many as the live workers
    offer (coordination/worker_slots.py) and SYNC_MAX_CONCURRENT_WINDOWS allows."""
    settings = runtime.settings
    try:
        live = worker_slots.live_slots(runtime.redis)
    except Exception as error:  # Redis away a moment: the setting alone decides
        log.warning("could not read the workers' window slots: %s", type(error).__name__)
        live = 0
    return WindowSizing.for_cluster(slots=worker_slots.feed_share(
                                        settings.max_concurrent_windows, live,
                                        worker_slots.sharers(settings)),
                                    page_size=settings.page_size,
                                    max_records=settings.window_size,
                                    lanes=settings.window_lanes)


def _first_of_interval(runtime: ClusterRuntime, kind: str, resource: str, run_id: str,
                       beat_interval_s: float | None) -> Skipped | None:
    """None when this trigger may go on; a Skipped naming the earlier trigger otherwise."""
    if beat_interval_s is None:
        return None  # asked for by hand (`sync`), never suppressed
    redis = runtime.redis
    job = f"{kind}:{resource}"
    job_key = f"{runtime.credential_id}:{job}"
    if claim_interval(redis, job_key, beat_interval_s, owner=run_id):
        return None
    return Skipped(resource, f"{job} was already triggered in this interval by "
                             f"{interval_owner(redis, job_key) or 'another trigger'}; "
                             "is a second beat running?", run_id)


def _plan_sync(runtime: ClusterRuntime, resource: str, full: bool, run_id: str,
               beat_interval_s: float | None = None, attempt: int = 1,
               planner: str = "", redelivered: bool = False) -> dict[str, Any]:
    settings, store = runtime.settings, runtime.store
    replanning = False
    if store.has_sync_log():
        existing = store.sync_log.get_run(run_id, resource)
        if existing is not None and existing.status != PLANNING:
            # Redelivered after the run went on without this message (or the watchdog's
            # re-plan raced a planner that finished): nothing to plan.
            return {"status": "duplicate", "resource": resource, "run_id": run_id,
                    "run_status": existing.status}
        replanning = existing is not None
    if not replanning and beat_interval_s is not None and \
            _kept_current_by_polls(runtime, resource, beat_interval_s):
        # Polls moved the watermark within the interval: a scheduled run would only spend
        # requests to find what they found. Not written to the sync log: nothing happened.
        log.info("%s is kept current by polling: the scheduled run is not needed", resource)
        return {"status": "skipped", "resource": resource, "reason": "kept current by polling"}
    if not replanning:
        duplicate = _first_of_interval(runtime, "sync", resource, run_id, beat_interval_s)
        if duplicate is not None:
            record_skip(store, duplicate)
            return {"status": "skipped", "resource": resource, "reason": duplicate.reason}
    client = runtime.trestle_client()
    ledger = _ledger(store)
    planned = plan_run(
        resource, store=store, client=client, lock=runtime.run_lock(),
        lock_ttl_s=settings.lock_ttl_s, sizing=cluster_sizing(runtime), full=full,
        settle_s=settings.settle_s, run_id=run_id, planner=planner,
        watched={"attempt": attempt, "feed": settings.feed},
        # Its planner died (the message came back): plan now, not after the lease lapsed.
        take_over=replanning and redelivered,
        prepare=lambda: ensure_tables(store, client, [resource]),
        defer_indexes=settings.defer_indexes,
        # The plan lives in the database from here on: messages carry one window each,
        # and the watchdog can finish what any lost message started.
        record=lambda conn, plan: ledger.record_plan_in(
            conn, replace(plan, attempt=attempt, feed=settings.feed)),
    )
    if isinstance(planned, Skipped):
        # The same run again (a redelivery): it goes on without this message. Another
        # run holding the resource: this one is recorded `skipped` (a dead planner's run
        # that lost the resource before it got it back included).
        return {"status": "duplicate" if planned.same_run else "skipped",
                "resource": resource, "reason": planned.reason}
    if not planned.windows:
        finalize_sync.delay(planned.run_id, resource, feed=settings.feed)  # nothing changed
    else:
        _hand_out(runtime, first=(planned.run_id, resource))
    return {"status": "planned", "resource": resource, "run_id": planned.run_id,
            "windows": len(planned.windows)}


def _kept_current_by_polls(runtime: ClusterRuntime, resource: str, interval_s: float) -> bool:
    if runtime.settings.poll_quota_share <= 0:
        return False
    try:
        polls = PollStateStore(runtime.redis, runtime.credential_id).load().resources
    except Exception as error:  # Redis away: the run goes ahead, as without polling
        log.warning("could not read the poll schedule: %s", type(error).__name__)
        return False
    state = polls.get(resource)
    return (state is not None and state.last_poll_at is not None
            and state.last_status in (POLL_IDLE, POLL_CHANGED)
            and time.time() - state.last_poll_at < interval_s)


def _ledger(store: Store) -> WindowLedger:
    return WindowLedger(store.engine, schema=store.schema)


def _senders(runtime: ClusterRuntime) -> Senders:
    """How the delivery protocol's messages go out: as Celery tasks of this feed."""
    feed = runtime.settings.feed
    return Senders(
        window=lambda header, window, token: sync_window_task.apply_async(
            (dict(header), window.to_dict(), token)),
        finalize=lambda run_id, resource: finalize_sync.delay(run_id, resource, feed=feed),
        hand_out_later=lambda delay_s: hand_out_windows.apply_async(
            kwargs={"feed": feed}, countdown=delay_s),
        plan=lambda resource, options, countdown, task_id: plan_sync.apply_async(
            (resource,), dict(options), countdown=countdown, task_id=task_id),
    )


def _hand_out(runtime: ClusterRuntime, first: tuple[str, str] | None = None) -> int:
    """Send windows of the feed's open runs (`first` before the others) while the feed's
    gate slots are free."""
    return delivery.hand_out(_ledger(runtime.store), runtime.window_gate(), runtime.run_lock(),
                             _senders(runtime), lease_s=runtime.settings.lock_ttl_s,
                             first=first)


@app.task(name="trestle.sync_window", bind=True, soft_time_limit=WINDOW_SOFT_LIMIT_S,
          time_limit=WINDOW_HARD_LIMIT_S)
def sync_window_task(self: BoundTask, plan: dict[str, Any], window: dict[str, Any],
                     token: int = 0) -> dict[str, Any]:
    """Walk one window to its end, if this delivery (dispatch `token`) still owns it.

    The message carries the plan's header and its own window only; a failure is recorded
    in the ledger, retried from there when transient, and finalize runs once every window
    of the run finished (whoever finished last sends it; the watchdog makes sure).
    """
    run_plan, run_window = RunPlan.from_header(plan), Window.from_dict(window)
    runtime = cluster_runtime(run_plan.feed)
    settings, store = runtime.settings, runtime.store
    ledger = _ledger(store)
    ids = (run_plan.run_id, run_plan.resource, run_window.window_id)
    with log_context(run_id=run_plan.run_id, resource=run_plan.resource,
                     window=run_window.window_id, feed=run_plan.feed):
        verdict, row = delivery.claim(ledger, ids, token, stale_s=settings.window_stale_s)
        gate = runtime.window_gate()
        holder = slot_holder(*ids)
        if verdict == GAVE_UP:  # failed for good: its slot and its run move on
            delivery.release_slot(gate, holder)
            _after_window(runtime, ledger, run_plan, None)
        if verdict != RUN:
            return {"window_id": run_window.window_id, "status": verdict}
        if not _slot_confirmed(gate, holder, settings.lock_ttl_s):
            # Its slot expired while the message waited and the gate is full (or Redis is
            # down): the window waits in the ledger, never runs without a slot.
            ledger.give_back(*ids, token)
            return {"window_id": run_window.window_id, "status": "no slot"}
        try:
            outcome = _sync_window(runtime, ledger, run_plan, run_window, token, holder)
        except WindowSupersededError:
            return {"window_id": run_window.window_id, "status": "superseded"}
        retries = row.retries if row is not None else 0
        retry_in = _window_retry_delay(settings, outcome, retries)
        # The outcome first, in the database: everything after it touches Redis or the
        # broker, which may be down, and is redone by the watchdog if it fails.
        ledger.settle(*ids, token, outcome, retry_in_s=retry_in)
        if retry_in is not None:
            log.warning("window %s failed transiently; retried in %.0f s (retry %d of %d)",
                        run_window.window_id, retry_in, retries + 1, delivery.WINDOW_MAX_RETRIES)
        delivery.release_slot(gate, holder)
        _adapt_concurrency(runtime, gate, outcome)
        _after_window(runtime, ledger, run_plan, retry_in)
    return outcome.to_dict()


def _slot_confirmed(gate: RedisWindowGate, holder: str, ttl_s: float) -> bool:
    try:
        return bool(gate.acquire(holder, ttl_s))
    except Exception as error:
        if not is_retriable(error):
            raise
        log.warning("could not confirm the window's slot: %s: %s", type(error).__name__, error)
        return False


def _window_retry_delay(settings: Settings, outcome: WindowOutcome,
                        retries: int) -> float | None:
    """Seconds until a transiently failed window is handed out again; None: it is final
    (a window that spent its retry budget without progress too: sync/run_retry.py)."""
    from trestle_tasks.sync.run_retry import window_retry_delay

    return window_retry_delay(outcome, retries, base_delay_s=settings.retry_delay_s,
                              max_retries=delivery.WINDOW_MAX_RETRIES)


def _after_window(runtime: ClusterRuntime, ledger: WindowLedger, run_plan: RunPlan,
                  retry_in: float | None) -> None:
    delivery.after_window(ledger, run_plan, retry_in, senders=_senders(runtime),
                          hand_out_next=lambda: _hand_out(runtime))


def _adapt_concurrency(runtime: ClusterRuntime, gate: RedisWindowGate,
                       outcome: WindowOutcome) -> None:
    """Halve the windows allowed at once under pressure; give one slot back otherwise."""
    try:
        quota = runtime.quota_limiter().state()
        hour_limit, hour_left = quota.get("hour_limit"), quota.get("hour_available")
        left = float(hour_left) / float(hour_limit) if hour_limit and hour_left else None
        pressure = window_pressure(
            outcome, quota_left_fraction=left,
            db_seconds_per_page=outcome.db_seconds / outcome.pages if outcome.pages else None)
        if not pressure:
            gate.grow()
        elif (slots := gate.shrink()) is not None:
            log.warning("window concurrency down to %d: %s", slots, ", ".join(pressure.reasons))
    except Exception as error:  # steering is an optimisation: never fail a window over it
        log.warning("could not adapt window concurrency: %s", type(error).__name__)


def _sync_window(runtime: ClusterRuntime, ledger: WindowLedger, run_plan: RunPlan,
                 run_window: Window, token: int, holder: str) -> WindowOutcome:
    settings, store = runtime.settings, runtime.store
    lock = runtime.run_lock()
    grant = LockGrant(run_plan.lock_name, run_plan.lock_owner, run_plan.fence)
    if not lock.renew(grant, settings.lock_ttl_s):
        return WindowOutcome(run_window.window_id, run_window.index, FAILED,
                             error="the run lost its lock before this window started")
    ids = (run_plan.run_id, run_plan.resource, run_window.window_id)
    heartbeat = WindowHeartbeat(
        beat=lambda: ledger.heartbeat(*ids, token), gate=runtime.window_gate(),
        holder=holder, slot_ttl_s=settings.lock_ttl_s, lock=lock, grant=grant,
        lock_ttl_s=settings.lock_ttl_s,
        interval_s=delivery.heartbeat_interval(settings.window_stale_s))
    with heartbeat:
        try:
            return sync_window(
                run_plan, run_window, store=store,
                client=runtime.trestle_client(),
                page_size=settings.page_size, on_page=heartbeat.check,
                media_since=media_since(run_plan, settings.resources, store),
                replication_min=settings.replication_min_records,
                on_stored=_freshness_of(runtime, run_plan),
            )
        except WindowSupersededError:
            log.warning("window %s stopped: another worker owns it now", run_window.window_id)
            raise
        except Exception as error:  # the sync log itself failed: still report the window
            log.exception("window %s crashed", run_window.window_id)
            return WindowOutcome(run_window.window_id, run_window.index, FAILED,
                                 error=f"{type(error).__name__}: {error}",
                                 retriable=is_retriable(error),
                                 error_kind=type(error).__name__)


@app.task(name="trestle.poll", soft_time_limit=POLL_TICK_WORK_S + 60,
          time_limit=POLL_TICK_WORK_S + 90)
def poll(feed: str = DEFAULT_FEED) -> dict[str, Any]:
    """One poll tick of the feed (beat sends one every POLL_TICK_S): the resources whose
    adaptive interval is up are asked what changed, within the polling budget, and a small
    delta is stored at once (sync/poll.py). A tick finding another still at work leaves."""
    runtime = cluster_runtime(feed)
    settings = runtime.settings
    with log_context(feed=feed):
        if settings.poll_quota_share <= 0 or not runtime.store.has_sync_log():
            return {"status": "off" if settings.poll_quota_share <= 0 else "no tables"}
        # Read once a tick: whether Property polls bring photo sets inline decides both
        # which resources are polled and how Property is asked.
        media_inline = _media_inline(runtime)
        tick = poll_tick(_polled_resources(runtime, media_inline), _poll_services(runtime),
                         poll_policy(runtime), settle_s=settings.settle_s,
                         with_media=lambda resource: media_inline and resource == "Property")
        if tick is None:
            return {"status": "busy"}
        _send_next_tick(feed, tick.next_at)
    return {"status": "polled", "polls": {o.resource: o.status for o in tick.outcomes}}


def _send_next_tick(feed: str, next_at: float | None) -> None:
    """A tick for the moment the next poll is due when that falls before beat's next tick:
    otherwise a poll waits for the tick after its due time, up to POLL_TICK_S late (with
    Property due every ~10.5 s, one in six of its polls' freshness). Beat's own ticks go on;
    a tick that finds nothing due costs a Redis read and no request."""
    if next_at is None:
        return
    wait_s = next_at - time.time()
    if 0 < wait_s < POLL_TICK_S:
        try:
            poll.apply_async(kwargs={"feed": feed}, countdown=wait_s,
                             expires=wait_s + 2 * POLL_TICK_S)
        except Exception as error:  # the broker away a moment: beat's next tick polls it
            log.warning("could not send the next poll tick: %s", type(error).__name__)


def poll_policy(runtime: ClusterRuntime) -> PollPolicy:
    """The polls' budget: SYNC_POLL_QUOTA_SHARE of the hour quota the server last announced
    (or the operator's lower cap; Trestle's published baseline before any response)."""
    settings = runtime.settings
    hour_quota: float = DEFAULT_HOUR_QUOTA
    try:
        announced = runtime.quota_limiter().state().get("hour_limit")
        hour_quota = float(announced) if announced else hour_quota
    except Exception as error:  # Redis away a moment: the baseline paces this tick
        log.warning("could not read the hour quota: %s", type(error).__name__)
    if settings.quota_per_hour:
        hour_quota = min(hour_quota, settings.quota_per_hour)
    return PollPolicy.for_quota(hour_quota, settings.poll_quota_share,
                                floor_s=settings.poll_min_s, slowest_s=settings.poll_max_s)


def _polled_resources(runtime: ClusterRuntime, media_inline: bool) -> list[str]:
    """Every synced resource but Media when Property polls bring photo sets inline: its
    own polls would fetch the same photos again, at the budget's cost of Property's
    freshness. Its watermark then moves with its scheduled runs."""
    resources = list(runtime.settings.resources)
    if media_inline:
        resources.remove("Media")
    return resources


def _media_inline(runtime: ClusterRuntime) -> bool:
    """Property polls bring photo sets inline when Media is synced too (as windows do)."""
    resources = runtime.settings.resources
    return "Property" in resources and "Media" in resources and \
        "Media" in runtime.store.resources()


def _poll_services(runtime: ClusterRuntime) -> TickServices:
    freshness = FreshnessRecorder(runtime.redis, runtime.credential_id)
    feed = runtime.settings.feed
    return TickServices(
        store=runtime.store, lock=runtime.run_lock(),
        # Polls go ahead of runs' requests at the quota limiter: a backfill keeping it busy
        # must not queue them behind its windows.
        new_client=lambda: runtime.trestle_client(priority=True),
        states=PollStateStore(runtime.redis, runtime.credential_id),
        record_freshness=freshness.record, record_clock=freshness.record_clock,
        # A delta too large for one poll: a regular run, planned and walked in windows.
        escalate=lambda resource: plan_sync.apply_async((resource,), {"feed": feed}))


def _freshness_of(runtime: ClusterRuntime,
                  run_plan: RunPlan) -> Callable[[list[float]], None] | None:
    """Where an incremental run's windows add the freshness of what they store (a full
    load's records are as old as the feed: their age says nothing of the copy's delay)."""
    if run_plan.lower_ticks is None:
        return None
    recorder = FreshnessRecorder(runtime.redis, runtime.credential_id)

    def record(latencies: list[float]) -> None:
        try:
            recorder.record(run_plan.resource, latencies)
        except Exception as error:  # the records are stored; only the figure is lost
            log.warning("could not record freshness: %s", type(error).__name__)

    return record


@app.task(name="trestle.hand_out_windows", soft_time_limit=120, time_limit=300)
def hand_out_windows(feed: str = DEFAULT_FEED) -> int:
    """Send the feed's pending windows while its gate slots are free (after a window's
    retry delay)."""
    return _hand_out(cluster_runtime(feed))


# Hours, not minutes: the finalize of a first load builds the table's secondary indexes
# (store/indexes.py), minutes to an hour at millions of wide rows; cut short, it would be
# retried from the start. Every other finalize takes a few statements.
@app.task(name="trestle.finalize_sync", bind=True, soft_time_limit=3 * 3600,
          time_limit=3 * 3600 + 300,
          base=RetryingTask, retry_policy=RetryPolicy(base_delay_s=10, max_delay_s=600),
          max_retries=10)
def finalize_sync(self: BoundTask, run_id: str, resource: str,
                  feed: str = DEFAULT_FEED) -> dict[str, Any]:
    """Close the run from what the database holds: its plan and its windows' outcomes.

    Idempotent, and sent more than once on purpose (the last window, the watchdog): only
    the call whose statement closed the run schedules a whole-run retry and alerts.
    """
    runtime = cluster_runtime(feed)
    settings, store = runtime.settings, runtime.store
    with log_context(run_id=run_id, resource=resource, feed=feed):
        ledger = _ledger(store)
        plan = ledger.plan(run_id, resource)
        run = store.sync_log.get_run(run_id, resource)
        if plan is None or run is None or run.status != RUNNING:
            return {"run_id": run_id, "resource": resource,
                    "status": run.status if run else "unknown", "retry_in_s": None}
        retry = delivery.RunRetry(plan, base_delay_s=settings.retry_delay_s,
                                  senders=_senders(runtime))
        run = finalize_run(plan, ledger.outcomes(run_id, resource), store=store,
                           lock=runtime.run_lock(), extra_details=retry.details)
        closed_here = retry.closed_here(run)
        if closed_here:
            retry.schedule()
            # Never raises; a repeat is cooled down. An attempt that will be retried whole
            # is not yet a failed run (its rejects and the quota still alert).
            alerts.after_run(runtime, run, retrying=retry.due is not None)
    return {"run_id": run_id, "resource": resource,
            "status": run.status if run else "unknown",
            "retry_in_s": retry.delay_s if closed_here else None}


@app.task(name="trestle.watch_runs", soft_time_limit=120, time_limit=300)
def watch_runs() -> dict[str, Any]:
    """On beat every half minute: look after every open run of this database.

    Windows whose worker died (heartbeat stale) or whose message was lost (queued, never
    started) are handed out again; runs whose windows all finished are finalized; the run
    lock of a run still waiting for gate slots is renewed; free slots are filled. Runs no
    ledger drives are watched by their lease: a planner that stopped renewing it is
    replaced under the same run id, and a reconcile or local run whose process is gone is
    closed, so no run waits on a process that is gone.
    """
    report: dict[str, Any] = {"runs": 0, "requeued": [], "finalized": [], "sent": 0,
                              "replanned": [], "closed": []}
    for feed, runtime in cluster_runtimes().items():
        with suppress(Exception):  # `sync --wait` reads it: a Redis blip must not stop this
            presence.mark_watchdog(runtime.redis)
            if take_orphaned(runtime.redis, _refresh_job(runtime)):
                log.warning("watchdog: the metadata refresh of feed %s stopped half way (its "
                            "worker died): sent again", feed)
                refresh_metadata.delay(feed=feed)
                report.setdefault("resent", []).append(f"refresh_metadata/{feed}")
        if not runtime.store.has_sync_log():
            continue
        ledger, lock = _ledger(runtime.store), runtime.run_lock()
        for run_id, resource in ledger.open_runs():
            report["runs"] += 1
            with log_context(run_id=run_id, resource=resource, feed=feed):
                watched = delivery.watch_run(
                    ledger, lock, runtime.window_gate(), run_id, resource,
                    window_stale_s=runtime.settings.window_stale_s,
                    lease_s=runtime.settings.lock_ttl_s, senders=_senders(runtime))
                report["requeued"].extend(f"{run_id}/{resource}/{c}" for c in watched.requeued)
                if watched.finalized:
                    report["finalized"].append(f"{run_id}/{resource}")
        for run in runtime.store.sync_log.unplanned_open_runs():
            report["runs"] += 1
            with log_context(run_id=run.run_id, resource=run.resource, feed=feed):
                verdict = delivery.watch_unplanned(runtime.store.sync_log, lock, run,
                                                   feed=feed, senders=_senders(runtime))
                if verdict.action != delivery.Unplanned.ALIVE:
                    report[verdict.action].append(f"{run.run_id}/{run.resource}")
                if verdict.action == delivery.Unplanned.CLOSED:
                    alerts.after_run(runtime, verdict.closed)
        report["sent"] += _hand_out(runtime)
    return report


@app.task(name="trestle.reap_stale_runs", soft_time_limit=300, time_limit=600)
def reap_stale_runs(older_than_s: float | None = None) -> list[str]:
    """Close runs nobody works on any more: an open run older than the lock's lease whose
    lock is gone (or held by a newer run). The watchdog does the same every half minute;
    this remains for workers whose beat runs an older schedule. Runs being planned and
    runs with a ledger are left to the watchdog, which re-plans or drives them.
    """
    reaped = []
    for feed, runtime in cluster_runtimes().items():
        store, lock = runtime.store, runtime.run_lock()
        age = timedelta(seconds=older_than_s if older_than_s is not None
                        else runtime.settings.lock_ttl_s)
        for run in store.sync_log.stale_runs(age):
            if run.status == PLANNING or "plan" in (run.details or {}):
                continue  # the watchdog re-plans or drives these
            holder = lock.holder(lock_name(run.resource))
            if holder is not None and holder.owner == run.run_id:
                continue  # still renewed by its windows: alive
            closed = store.sync_log.close_run(
                run.run_id, run.resource, status=ABANDONED,
                error="closed by the reaper: the run stopped without finishing")
            alerts.after_run(runtime, closed)
            reaped.append(f"{run.run_id}/{run.resource}")
            log.warning("reaped stale run %s", run.run_id,
                        extra={"resource": run.resource, "feed": feed})
    return reaped


@app.task(name="trestle.check_alerts", soft_time_limit=120, time_limit=300)
def check_alerts() -> list[dict[str, Any]]:
    """On beat: stale resources, run locks held too long, quota use (see monitoring/alerts)."""
    report = []
    for feed, runtime in cluster_runtimes().items():
        with log_context(feed=feed):
            report += [{"alert": d.dedup_key, "status": d.status, "feed": feed}
                       for d in alerts.check(runtime)]
    return report


# A census that found Trestle gone for a whole retry budget is not taken again at once:
# one budget of no progress per command; tomorrow's trigger (or an operator) tries again.
@app.task(name="trestle.reconcile", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300,
          base=RetryingTask, retry_policy=RetryPolicy(base_delay_s=300, max_delay_s=3600),
          not_retried_for=(NoProgressError,), max_retries=3)
def reconcile_task(resource: str, beat_interval_s: float | None = None,
                   dry_run: bool = False, feed: str = DEFAULT_FEED) -> dict[str, Any]:
    """Daily: make the store equal to the feed (a census of (key, timestamp) pairs compared
    and repaired; `dry_run` only measures the drift)."""
    runtime = cluster_runtime(feed)
    settings, store = runtime.settings, runtime.store
    run_id = new_run_id()
    duplicate = _first_of_interval(runtime, "reconcile", resource, run_id, beat_interval_s)
    if duplicate is not None:
        record_skip(store, duplicate)
        return {"status": "skipped", "resource": resource, "reason": duplicate.reason}
    # A reconcile holds a worker process as long as a window: it takes a window slot, so
    # windows and reconciles together always leave the slot that polls and planning use.
    gate, holder = runtime.window_gate(), f"reconcile/{resource}/{run_id}"
    if not _slot_confirmed(gate, holder, settings.lock_ttl_s):
        reconcile_task.apply_async((resource,), {"dry_run": dry_run, "feed": feed},
                                   countdown=RECONCILE_SLOT_WAIT_S)
        log.info("reconcile of %s waits for a free window slot", resource)
        return {"status": "waiting for a slot", "resource": resource}
    try:
        with SlotLease(gate, holder, settings.lock_ttl_s):
            result = reconcile(
                resource, store=store, run_id=run_id,
                client=runtime.trestle_client(),
                lock=runtime.run_lock(),
                lock_ttl_s=settings.lock_ttl_s, dry_run=dry_run,
                synced_resources=settings.resources,
            )
    except Exception:
        # The run's row was closed as failed with what the census had found: alert on it.
        with suppress(Exception):
            alerts.after_run(runtime, store.sync_log.get_run(run_id, resource))
        raise
    if isinstance(result, Skipped):
        return {"status": "skipped", "resource": resource, "reason": result.reason}
    alerts.after_run(runtime, result)  # drift over the threshold alerts
    details = result.details or {}
    return {"status": result.status, "resource": resource, "run_id": result.run_id,
            **{k: details.get(k, 0) for k in ("census", "missing", "stale", "gone",
                                               "fetched", "deleted")}}


@app.task(name="trestle.refresh_metadata", soft_time_limit=600, time_limit=900,
          base=RetryingTask, retry_policy=RetryPolicy(base_delay_s=60, max_delay_s=600),
          not_retried_for=(NoProgressError,), max_retries=5)
def refresh_metadata(feed: str | None = None) -> dict[str, Any]:
    """Read `$metadata` and evolve the tables (new fields become columns or are kept), of
    `feed` or of every feed."""
    runtimes = cluster_runtimes()
    chosen = {feed: cluster_runtime(feed)} if feed is not None else runtimes
    reports = {}
    for name, runtime in chosen.items():
        # A lease while it runs: a refresh killed half way is sent again by the watchdog.
        with log_context(feed=name), JobLease(runtime.redis, _refresh_job(runtime),
                                              lease_s=runtime.settings.lock_ttl_s):
            report = migrate_from_service(runtime.store, runtime.trestle_client(),
                                          runtime.settings.resources)
        reports[name] = {"resources": list(runtime.settings.resources), "report": str(report)}
    if feed is None and list(chosen) == [DEFAULT_FEED]:
        return reports[DEFAULT_FEED]  # one feed: the shape it always had
    return reports


def _refresh_job(runtime: ClusterRuntime) -> str:
    return f"refresh-metadata:{runtime.credential_id}:{runtime.settings.feed}"
