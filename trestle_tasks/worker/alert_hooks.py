"""The alert calls the pipeline makes, at its boundaries (tasks, local runs).

Each takes the caller's runtime (runtime.py: the cluster's for tasks and cluster commands,
a local one for runs in one process), whose dispatcher, quota limiter, store and run lock
it uses, and never raises: alerting is a bystander of the sync, so any fault here is logged
and swallowed. When no channel is configured they return at once, without touching the
database or Redis.

They work with runtimes, so they sit beside tasks.py, above monitoring/, whose rules and
checks they call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from trestle_tasks.core.errors import BadCredentialsError
from trestle_tasks.core.settings import Settings
from trestle_tasks.monitoring.alerts import checks
from trestle_tasks.monitoring.alerts.dispatcher import AlertDispatcher, Delivery
from trestle_tasks.monitoring.alerts.model import RUN_FAILED, Alert
from trestle_tasks.monitoring.alerts.rules import (
    Thresholds,
    auth_alert,
    clock_alert,
    crash_alert,
    freshness_alerts,
    lock_alerts,
    quota_alert,
    run_alerts,
    stale_alerts,
)
from trestle_tasks.monitoring.freshness import FreshnessRecorder, clock_warning
from trestle_tasks.store.sync_log import SyncRun
from trestle_tasks.worker.runtime import ClusterRuntime, Runtime

log = logging.getLogger(__name__)


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        quota_fraction=settings.alert_quota_threshold,
        reject_fraction=settings.alert_reject_threshold,
        stale_after=timedelta(minutes=settings.alert_stale_after_minutes),
        lock_max_age=timedelta(minutes=settings.alert_lock_max_minutes),
        drift_records=settings.alert_drift_threshold,
        freshness_p95_s=settings.alert_freshness_s,
    )


def _dispatcher(runtime: Runtime) -> AlertDispatcher | None:
    dispatcher = runtime.alert_dispatcher()
    return dispatcher if dispatcher.enabled else None


def quota_state(runtime: Runtime) -> Mapping[str, Any] | None:
    """The limiter's last view of the quota headers (Redis for the cluster, this process
    for a local runtime)."""
    limiter = runtime.quota_limiter()
    state = getattr(limiter, "state", None)
    return state() if state is not None else None


def _guarded(what: str, runtime: Runtime, gather: Any) -> list[Delivery]:
    try:
        dispatcher = _dispatcher(runtime)
        if dispatcher is None:
            return []
        alerts: list[Alert] = gather()
        return dispatcher.send_all(alerts)
    except Exception as error:
        log.warning("alerts after %s skipped: %s: %s", what, type(error).__name__, error)
        return []


def _quota_alerts(runtime: Runtime) -> list[Alert]:
    try:
        alert = quota_alert(quota_state(runtime), thresholds(runtime.settings))
    except Exception as error:  # Redis down: the run's own alerts still go out
        log.warning("quota state unavailable for alerts: %s", type(error).__name__)
        return []
    return [alert] if alert is not None else []


def _freshness_alerts(runtime: Runtime, limits: Thresholds) -> list[Alert]:
    """Freshness is measured by the workers into Redis: a local runtime has none."""
    if runtime.settings.client_id is None or not isinstance(runtime, ClusterRuntime):
        return []
    try:
        recorder = FreshnessRecorder(runtime.redis, runtime.credential_id)
        figures = [recorder.recent(resource) for resource in runtime.settings.resources]
        clock = clock_alert(clock_warning(recorder.clock(), runtime.settings.settle_s))
    except Exception as error:  # Redis down: the other checks still go out
        log.warning("freshness unavailable for alerts: %s", type(error).__name__)
        return []
    return freshness_alerts(figures, limits) + ([clock] if clock is not None else [])


def after_run(runtime: Runtime, run: SyncRun | None, *,
              retrying: bool = False) -> list[Delivery]:
    """After a run's sync log row is closed: failed or partial, too many rejects, quota.

    A reconcile run (details kind "reconcile", dry runs included) is judged as one: its
    failure, and drift past ALERT_DRIFT_THRESHOLD. Call it with the closed reconcile run.
    `retrying`: the run is about to be tried again as a whole, so its failure is not final
    yet and is not alerted (the last attempt's is).
    """
    def gather() -> list[Alert]:
        found = run_alerts(run, thresholds(runtime.settings)) if run is not None else []
        if retrying:
            found = [alert for alert in found if alert.kind != RUN_FAILED]
        return found + _quota_alerts(runtime)

    return _guarded("a run", runtime, gather)


def after_crash(runtime: Runtime, resource: str, error: BaseException) -> list[Delivery]:
    """A run that raised before its sync log row closed (planning failed, credentials)."""
    def gather() -> list[Alert]:
        if isinstance(error, BadCredentialsError):
            return [auth_alert(error)]
        return [crash_alert(resource, f"{type(error).__name__}: {error}")]

    return _guarded("a failed run", runtime, gather)


def check(runtime: Runtime, *, now: datetime | None = None) -> list[Delivery]:
    """The periodic check: stale resources, run locks held too long, quota use."""
    def gather() -> list[Alert]:
        moment = now or datetime.now(UTC)
        settings = runtime.settings
        limits = thresholds(settings)
        store = runtime.store
        history = checks.resource_history(store, settings.resources)
        held = checks.held_locks(store, runtime.run_lock(), runtime.credential_id,
                                 settings.resources)
        return (stale_alerts(history, moment, limits) + lock_alerts(held, moment, limits)
                + _quota_alerts(runtime) + _freshness_alerts(runtime, limits))

    return _guarded("the periodic check", runtime, gather)
