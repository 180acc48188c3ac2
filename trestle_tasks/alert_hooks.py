"""The alert calls the pipeline makes, at its boundaries (tasks, local runs).

Each takes the settings, builds the dispatcher and its inputs, and never raises: alerting
is a bystander of the sync, so any fault here is logged and swallowed. When no channel is
configured they return at once, without touching the database or Redis.

They build what they need from the settings (factory.py), so they sit beside tasks.py, above
monitoring/, whose rules and checks they call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from trestle_tasks import factory
from trestle_tasks.errors import BadCredentialsError
from trestle_tasks.monitoring.alerts import checks
from trestle_tasks.monitoring.alerts.dispatcher import AlertDispatcher, Delivery
from trestle_tasks.monitoring.alerts.model import RUN_FAILED, Alert
from trestle_tasks.monitoring.alerts.rules import (
    Thresholds,
    auth_alert,
    crash_alert,
    lock_alerts,
    quota_alert,
    run_alerts,
    stale_alerts,
)
from trestle_tasks.settings import Settings
from trestle_tasks.store.journal import SyncRun

log = logging.getLogger(__name__)


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        quota_fraction=settings.alert_quota_threshold,
        reject_fraction=settings.alert_reject_threshold,
        stale_after=timedelta(minutes=settings.alert_stale_after_minutes),
        lock_max_age=timedelta(minutes=settings.alert_lock_max_minutes),
        drift_records=settings.alert_drift_threshold,
    )


def _dispatcher(settings: Settings, shared: bool) -> AlertDispatcher | None:
    dispatcher = factory.alert_dispatcher(settings, shared=shared)
    return dispatcher if dispatcher.enabled else None


def quota_state(settings: Settings, *, shared: bool) -> Mapping[str, Any] | None:
    """The limiter's last view of the quota headers (Redis for workers, this process else)."""
    limiter = factory.quota_limiter(settings, shared=shared)
    state = getattr(limiter, "state", None)
    return state() if state is not None else None


def _guarded(what: str, settings: Settings, shared: bool, gather: Any) -> list[Delivery]:
    try:
        dispatcher = _dispatcher(settings, shared)
        if dispatcher is None:
            return []
        alerts: list[Alert] = gather()
        return dispatcher.send_all(alerts)
    except Exception as error:
        log.warning("alerts after %s skipped: %s: %s", what, type(error).__name__, error)
        return []


def _quota_alerts(settings: Settings, shared: bool) -> list[Alert]:
    try:
        alert = quota_alert(quota_state(settings, shared=shared), thresholds(settings))
    except Exception as error:  # Redis down: the run's own alerts still go out
        log.warning("quota state unavailable for alerts: %s", type(error).__name__)
        return []
    return [alert] if alert is not None else []


def after_run(settings: Settings, run: SyncRun | None, *, shared: bool,
              retrying: bool = False) -> list[Delivery]:
    """After a run's sync log row is closed: failed or partial, too many rejects, quota.

    A reconcile run (details kind "reconcile", dry runs included) is judged as one: its
    failure, and drift past ALERT_DRIFT_THRESHOLD. Call it with the closed reconcile run.
    `retrying`: the run is about to be tried again as a whole, so its failure is not final
    yet and is not alerted (the last attempt's is).
    """
    def gather() -> list[Alert]:
        found = run_alerts(run, thresholds(settings)) if run is not None else []
        if retrying:
            found = [alert for alert in found if alert.kind != RUN_FAILED]
        return found + _quota_alerts(settings, shared)

    return _guarded("a run", settings, shared, gather)


def after_crash(settings: Settings, resource: str, error: BaseException, *,
                shared: bool) -> list[Delivery]:
    """A run that raised before its sync log row closed (planning failed, credentials)."""
    def gather() -> list[Alert]:
        if isinstance(error, BadCredentialsError):
            return [auth_alert(error)]
        return [crash_alert(resource, f"{type(error).__name__}: {error}")]

    return _guarded("a failed run", settings, shared, gather)


def check(settings: Settings, *, shared: bool, now: datetime | None = None) -> list[Delivery]:
    """The periodic check: stale resources, run locks held too long, quota use."""
    def gather() -> list[Alert]:
        moment = now or datetime.now(UTC)
        limits = thresholds(settings)
        store = factory.store(settings)
        history = checks.resource_history(store, settings.resources)
        held = checks.held_locks(store, factory.run_lock(settings, shared=shared),
                                 factory.credential_id(settings), settings.resources)
        return (stale_alerts(history, moment, limits) + lock_alerts(held, moment, limits)
                + _quota_alerts(settings, shared))

    return _guarded("the periodic check", settings, shared, gather)
