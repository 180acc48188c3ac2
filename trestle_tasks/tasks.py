"""Celery tasks: thin wrappers that build collaborators from settings and call a use case.

Retry policy is decided here and only here. Task arguments are run ids, resource names
and plain window bounds — never credentials (Flower shows arguments).
"""

from __future__ import annotations

import logging
import random
from contextlib import suppress
from dataclasses import replace
from datetime import timedelta
from typing import Any

from celery import chord

from trestle_tasks import factory
from trestle_tasks.celery_app import app
from trestle_tasks.celery_settings import WINDOW_HARD_LIMIT_S, WINDOW_SOFT_LIMIT_S
from trestle_tasks.coordination.concurrency import window_pressure
from trestle_tasks.coordination.locks import LockGrant, LockKeeper
from trestle_tasks.coordination.triggers import claim_interval, interval_owner
from trestle_tasks.errors import RetriableError
from trestle_tasks.logs import log_context
from trestle_tasks.monitoring.alerts import hooks as alerts
from trestle_tasks.settings import Settings, load_settings
from trestle_tasks.store.journal import ABANDONED, FAILED
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.plan import (
    Skipped,
    WindowSizing,
    lock_name,
    new_run_id,
    plan_run,
    record_skip,
)
from trestle_tasks.sync.reconcile import reconcile
from trestle_tasks.sync.run_retry import MAX_RUN_ATTEMPTS, run_retry_delay
from trestle_tasks.sync.schema import ensure_tables, migrate_from_service
from trestle_tasks.sync.window import media_since, sync_window

log = logging.getLogger(__name__)
WINDOW_MAX_RETRIES = 3
# Deferrals wait about a tenth of SYNC_RETRY_DELAY each; past this many a window runs anyway,
# so a leaked slot can delay a window but never starve it.
WINDOW_MAX_DEFERRALS = 200


def _settings() -> Settings:
    return load_settings()


@app.task(name="trestle.plan_sync", bind=True, soft_time_limit=900, time_limit=1200,
          autoretry_for=(RetriableError,), retry_backoff=30, retry_backoff_max=900,
          retry_jitter=True, max_retries=5)
def plan_sync(self: Any, resource: str, full: bool = False, run_id: str | None = None,
              beat_interval_s: float | None = None, attempt: int = 1) -> dict[str, Any]:
    """Plan a run of `resource` and launch its windows as a chord ending in finalize_sync.

    Beat passes `beat_interval_s`: such a trigger first claims its interval, so a second
    beat started by mistake cannot double the runs.
    """
    run_id = run_id or new_run_id()
    with log_context(run_id=run_id, resource=resource):
        try:
            return _plan_sync(resource, full, run_id, beat_interval_s, attempt)
        except Exception as error:
            # Alert once the error is final (fatal, or the last retry): no sync log row
            # tells anyone about a run that was never planned. Bad credentials alert as such.
            if not getattr(error, "retriable", False) or self.request.retries >= self.max_retries:
                with suppress(Exception):  # bad settings: the original error tells more
                    alerts.after_crash(_settings(), resource, error, shared=True)
            raise


def cluster_sizing(settings: Settings) -> WindowSizing:
    """A run cut for the cluster: one window per window slot (SYNC_MAX_CONCURRENT_WINDOWS)."""
    return WindowSizing.for_cluster(slots=settings.max_concurrent_windows,
                                    page_size=settings.page_size,
                                    max_records=settings.window_size)


def _first_of_interval(settings: Settings, kind: str, resource: str, run_id: str,
                       beat_interval_s: float | None) -> Skipped | None:
    """None when this trigger may go on; a Skipped naming the earlier trigger otherwise."""
    if beat_interval_s is None:
        return None  # asked for by hand (`sync`), never suppressed
    redis = factory.redis_client(settings)
    job = f"{kind}:{resource}"
    job_key = f"{factory.credential_id(settings)}:{job}"
    if claim_interval(redis, job_key, beat_interval_s, owner=run_id):
        return None
    return Skipped(resource, f"{job} was already triggered in this interval by "
                             f"{interval_owner(redis, job_key) or 'another trigger'}; "
                             "is a second beat running?", run_id)


def _plan_sync(resource: str, full: bool, run_id: str,
               beat_interval_s: float | None = None, attempt: int = 1) -> dict[str, Any]:
    settings = _settings()
    store = factory.store(settings)
    duplicate = _first_of_interval(settings, "sync", resource, run_id, beat_interval_s)
    if duplicate is not None:
        record_skip(store, duplicate)
        return {"status": "skipped", "resource": resource, "reason": duplicate.reason}
    client = factory.trestle_client(settings, shared=True)
    planned = plan_run(
        resource, store=store, client=client, lock=factory.run_lock(settings), owner=run_id,
        lock_ttl_s=settings.lock_ttl_s, sizing=cluster_sizing(settings), full=full,
        settle_s=settings.settle_s,
        run_id=run_id, prepare=lambda: ensure_tables(store, client, [resource]),
    )
    if isinstance(planned, Skipped):
        return {"status": "skipped", "resource": resource, "reason": planned.reason}
    plan_data = replace(planned, attempt=attempt).to_dict()
    if not planned.windows:
        finalize_sync.delay([], plan_data)  # nothing changed; a chord needs a header
    else:
        header = [sync_window_task.s(plan_data, window.to_dict()) for window in planned.windows]
        chord(header)(finalize_sync.s(plan_data))
    return {"status": "planned", "resource": resource, "run_id": planned.run_id,
            "windows": len(planned.windows)}


@app.task(name="trestle.sync_window", bind=True, soft_time_limit=WINDOW_SOFT_LIMIT_S,
          time_limit=WINDOW_HARD_LIMIT_S, max_retries=WINDOW_MAX_RETRIES)
def sync_window_task(self: Any, plan: dict[str, Any], window: dict[str, Any],
                     deferrals: int = 0) -> dict[str, Any]:
    """Walk one window to its end; a failure is returned (so finalize still runs).

    Under pressure the cluster runs fewer windows at once: a window that finds no free
    slot is deferred (`deferrals` counts that, apart from real failures' retries).
    """
    run_plan, run_window = RunPlan.from_dict(plan), Window.from_dict(window)
    settings = _settings()
    gate = factory.window_gate(settings)
    holder = self.request.id or f"{run_plan.run_id}:{run_window.window_id}"
    with log_context(run_id=run_plan.run_id, resource=run_plan.resource,
                     window=run_window.window_id):
        if deferrals < WINDOW_MAX_DEFERRALS and not gate.acquire(holder, settings.lock_ttl_s):
            _keep_run_lock(settings, run_plan)  # a waiting window still belongs to a live run
            raise self.retry(kwargs={"deferrals": deferrals + 1},
                             countdown=random.uniform(1, 3) * settings.retry_delay_s / 10 + 1,
                             max_retries=self.request.retries + 1)
        try:
            outcome = _sync_window(run_plan, run_window)
        finally:
            gate.release(holder)
        _adapt_concurrency(settings, gate, outcome)
    failures_retried = self.request.retries - deferrals
    if outcome.status == FAILED and outcome.retriable and failures_retried < WINDOW_MAX_RETRIES:
        delay = settings.retry_delay_s
        raise self.retry(kwargs={"deferrals": deferrals},
                         countdown=min(delay * 2 ** failures_retried, delay * 20),
                         max_retries=self.request.retries + 1)
    return outcome.to_dict()


def _keep_run_lock(settings: Settings, run_plan: RunPlan) -> None:
    grant = LockGrant(run_plan.lock_name, run_plan.lock_owner, run_plan.fence)
    factory.run_lock(settings).renew(grant, settings.lock_ttl_s)


def _adapt_concurrency(settings: Settings, gate: Any, outcome: WindowOutcome) -> None:
    """Halve the windows allowed at once under pressure; give one slot back otherwise."""
    try:
        quota = factory.quota_limiter(settings, shared=True).state()
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


def _sync_window(run_plan: RunPlan, run_window: Window) -> WindowOutcome:
    settings = _settings()
    lock = factory.run_lock(settings)
    grant = LockGrant(run_plan.lock_name, run_plan.lock_owner, run_plan.fence)
    if not lock.renew(grant, settings.lock_ttl_s):
        return WindowOutcome(run_window.window_id, run_window.index, FAILED,
                             error="the run lost its lock before this window started")
    with LockKeeper(lock, grant, settings.lock_ttl_s):
        try:
            store = factory.store(settings)
            outcome = sync_window(
                run_plan, run_window, store=store,
                client=factory.trestle_client(settings, shared=True),
                page_size=settings.page_size,
                media_since=media_since(run_plan, settings.resources, store),
                replication_min=settings.replication_min_records,
            )
        except Exception as error:  # the journal itself failed: still report the window
            log.exception("window %s crashed", run_window.window_id)
            outcome = WindowOutcome(run_window.window_id, run_window.index, FAILED,
                                    error=f"{type(error).__name__}: {error}", retriable=True)
    return outcome


@app.task(name="trestle.finalize_sync", bind=True, soft_time_limit=300, time_limit=600,
          autoretry_for=(RetriableError,), retry_backoff=10, max_retries=10)
def finalize_sync(self: Any, outcomes: list[dict[str, Any]], plan: dict[str, Any]
                  ) -> dict[str, Any]:
    settings = _settings()
    with log_context(run_id=plan["run_id"], resource=plan["resource"]):
        run = finalize_run(
            RunPlan.from_dict(plan), [WindowOutcome.from_dict(o) for o in outcomes],
            store=factory.store(settings), lock=factory.run_lock(settings),
        )
        retry_in = _retry_run_later(settings, RunPlan.from_dict(plan), run, outcomes)
        # Never raises; a repeat is cooled down. An attempt that will be retried whole is
        # not yet a failed run (its rejects and the quota still alert).
        alerts.after_run(settings, run, shared=True, retrying=retry_in is not None)
    return {"run_id": plan["run_id"], "resource": plan["resource"],
            "status": run.status if run else "unknown", "retry_in_s": retry_in}


def _retry_run_later(settings: Settings, plan: RunPlan, run: Any,
                     outcomes: list[dict[str, Any]]) -> float | None:
    """A run that failed only transiently is planned again, as a whole, after a backoff."""
    if run is None:
        return None
    delay = run_retry_delay(plan, run.status, [WindowOutcome.from_dict(o) for o in outcomes],
                            base_delay_s=settings.retry_delay_s)
    if delay is None:
        return None
    plan_sync.apply_async((plan.resource,), {"full": plan.full, "attempt": plan.attempt + 1},
                          countdown=delay)
    log.warning("run %s %s after transient failures; the run is retried as a whole in %.0f s "
                "(attempt %d of %d)", plan.run_id, run.status, delay, plan.attempt + 1,
                MAX_RUN_ATTEMPTS, extra={"resource": plan.resource})
    return delay


@app.task(name="trestle.reap_stale_runs", soft_time_limit=300, time_limit=600)
def reap_stale_runs(older_than_s: float | None = None) -> list[str]:
    """Close runs whose chord never fired (a lost worker, a Redis restart).

    A live run keeps renewing its lock; an open run older than the lock's TTL whose lock is
    gone (or held by a newer run) has nobody working on it any more.
    """
    settings = _settings()
    store = factory.store(settings)
    lock = factory.run_lock(settings)
    age = timedelta(seconds=older_than_s if older_than_s is not None else settings.lock_ttl_s)
    reaped = []
    for run in store.journal.stale_runs(age):
        holder = lock.holder(lock_name(run.resource))
        if holder is not None and holder.owner == run.run_id:
            continue  # still renewed by its windows: alive
        closed = store.journal.close_run(
            run.run_id, run.resource, status=ABANDONED,
            error="closed by the reaper: the run stopped without finishing")
        alerts.after_run(settings, closed, shared=True)
        reaped.append(f"{run.run_id}/{run.resource}")
        log.warning("reaped stale run %s", run.run_id, extra={"resource": run.resource})
    return reaped


@app.task(name="trestle.check_alerts", soft_time_limit=120, time_limit=300)
def check_alerts() -> list[dict[str, Any]]:
    """On beat: stale resources, run locks held too long, quota use (see monitoring/alerts)."""
    deliveries = alerts.check(_settings(), shared=True)
    return [{"alert": d.dedup_key, "status": d.status} for d in deliveries]


@app.task(name="trestle.reconcile", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300,
          autoretry_for=(RetriableError,), retry_backoff=300, retry_backoff_max=3600,
          max_retries=3)
def reconcile_task(resource: str, beat_interval_s: float | None = None,
                   dry_run: bool = False) -> dict[str, Any]:
    """Daily: make the store equal to the feed (a census of (key, timestamp) pairs compared
    and repaired; `dry_run` only measures the drift)."""
    settings = _settings()
    run_id = new_run_id()
    store = factory.store(settings)
    duplicate = _first_of_interval(settings, "reconcile", resource, run_id,
                                   beat_interval_s)
    if duplicate is not None:
        record_skip(store, duplicate)
        return {"status": "skipped", "resource": resource, "reason": duplicate.reason}
    try:
        result = reconcile(
            resource, store=store, run_id=run_id,
            client=factory.trestle_client(settings, shared=True),
            lock=factory.run_lock(settings),
            lock_ttl_s=settings.lock_ttl_s, dry_run=dry_run,
            synced_resources=settings.resources,
        )
    except Exception:
        # The run's row was closed as failed with what the census had found: alert on it.
        with suppress(Exception):
            alerts.after_run(settings, store.journal.get_run(run_id, resource), shared=True)
        raise
    if isinstance(result, Skipped):
        return {"status": "skipped", "resource": resource, "reason": result.reason}
    alerts.after_run(settings, result, shared=True)  # drift over the threshold alerts
    details = result.details or {}
    return {"status": result.status, "resource": resource, "run_id": result.run_id,
            **{k: details.get(k, 0) for k in ("census", "missing", "stale", "gone",
                                               "fetched", "deleted")}}


@app.task(name="trestle.refresh_metadata", soft_time_limit=600, time_limit=900,
          autoretry_for=(RetriableError,), retry_backoff=60, max_retries=5)
def refresh_metadata() -> dict[str, Any]:
    """Read `$metadata` and evolve the tables (new fields become columns or are kept)."""
    settings = _settings()
    report = migrate_from_service(factory.store(settings),
                                  factory.trestle_client(settings, shared=True),
                                  settings.resources)
    return {"resources": list(settings.resources), "report": str(report)}
