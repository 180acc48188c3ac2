"""When to alert: pure functions from what the pipeline knows to the alerts it should send.

No I/O here, so every threshold is testable with plain values; `checks.py` and `hooks.py`
gather the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from trestle_tasks.monitoring.alerts.model import (
    AUTH_FAILED,
    CRITICAL,
    DRIFT,
    FRESHNESS,
    LOCK_HELD,
    QUOTA_HIGH,
    REJECTS_HIGH,
    RUN_FAILED,
    STALE,
    WARNING,
    Alert,
)
from trestle_tasks.monitoring.drift import ReconcileReport, reconcile_report
from trestle_tasks.monitoring.freshness import Freshness
from trestle_tasks.store.sync_log import ABANDONED, FAILED, PARTIAL, SyncRun


@dataclass(frozen=True)
class Thresholds:
    quota_fraction: float = 0.9  # of the hour quota used
    reject_fraction: float = 0.01  # of the records fetched in one run
    stale_after: timedelta = timedelta(minutes=60)
    lock_max_age: timedelta = timedelta(minutes=360)
    drift_records: int = 100  # missing + stale + gone found by one reconcile
    freshness_p95_s: float = 120.0  # a change's timestamp to its commit, last hour


@dataclass(frozen=True)
class ResourceHistory:
    """What the sync log says about one resource's sync runs."""

    resource: str
    first_run_at: datetime | None
    last_success_at: datetime | None


@dataclass(frozen=True)
class HeldLock:
    resource: str
    owner: str
    since: datetime


def run_alerts(run: SyncRun, thresholds: Thresholds) -> list[Alert]:
    """A run that did not fully succeed, and a run that rejected too much of what it read;
    for a reconcile, its failure and the drift it found."""
    report = reconcile_report(run)
    if report is not None:
        return reconcile_alerts(report, thresholds) + _reject_alerts(run, thresholds)
    alerts = []
    if run.status in (FAILED, PARTIAL, ABANDONED):
        alerts.append(Alert(
            kind=RUN_FAILED, resource=run.resource,
            severity=WARNING if run.status == PARTIAL else CRITICAL,
            title=f"{run.resource} sync {run.status}",
            text=(f"Run {run.run_id} of {run.resource} ended {run.status}: "
                  f"{run.windows_ok} window(s) succeeded, {run.windows_failed} failed, "
                  f"{run.records_upserted} record(s) stored.\n"
                  f"Error: {run.error or '(none recorded)'}\n"
                  "The watermark stays below the failed windows; the next run retries them. "
                  "See `trestle-etl status`."),
        ))
        windows = (run.details or {}).get("windows") or []
        refused = [w for w in windows if w.get("error_kind") == "BadCredentialsError"]
        if refused:  # the credentials, not the run, are what someone has to fix
            alerts.append(auth_alert(refused[0].get("error") or "a window's token was refused"))
    return alerts + _reject_alerts(run, thresholds)


def _reject_alerts(run: SyncRun, thresholds: Thresholds) -> list[Alert]:
    fetched = max(run.records_fetched, 0)
    if run.records_rejected <= 0 or fetched <= 0:
        return []
    fraction = run.records_rejected / fetched
    if fraction <= thresholds.reject_fraction:
        return []
    return [Alert(
        kind=REJECTS_HIGH, resource=run.resource, severity=WARNING,
        title=f"{run.resource}: {fraction:.1%} of records rejected",
        text=(f"Run {run.run_id} rejected {run.records_rejected} of {fetched} "
              f"{run.resource} record(s) ({fraction:.2%}, threshold "
              f"{thresholds.reject_fraction:.2%}). The records and reasons are in "
              "etl_rejects."),
    )]


def reconcile_alerts(report: ReconcileReport, thresholds: Thresholds) -> list[Alert]:
    """A reconcile that failed, and one that found more drift than the threshold allows."""
    alerts = []
    if report.status in (FAILED, PARTIAL, ABANDONED):
        alerts.append(Alert(
            kind=RUN_FAILED, resource=report.resource, severity=WARNING,
            # Its own cooldown: a failing sync of the resource must not silence this one.
            dedup_key=f"{RUN_FAILED}:reconcile:{report.resource}",
            title=f"{report.resource} reconcile {report.status}",
            text=(f"Reconcile run {report.run_id} of {report.resource} ended "
                  f"{report.status}.\nError: {report.error or '(none recorded)'}\n"
                  "Nothing the census could not confirm was deleted; the next reconcile "
                  "tries again. See `trestle-etl status`."),
        ))
    drift = drift_alert(report, thresholds)
    if drift is not None:
        alerts.append(drift)
    return alerts


def _figure(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def drift_alert(report: ReconcileReport, thresholds: Thresholds) -> Alert | None:
    """More records differing from the feed than `drift_records` (0: any at all).

    Dry runs count: they measure drift too, and an operator watching with them wants to hear
    of it. Rows of older versions carry no drift figures and never alert.
    """
    if not report.measured or report.drift <= thresholds.drift_records:
        return None
    if report.dry_run:
        done = "This was a dry run: nothing was repaired; `trestle-etl reconcile` repairs it."
    else:
        done = (f"Repaired: {_figure(report.fetched)} record(s) fetched and stored again, "
                f"{_figure(report.deleted)} marked deleted.")
        if report.gone and not report.deleted:
            done += (" The deletion guard refused to mark the gone records deleted (an "
                     "incomplete census or a mass deletion looks the same).")
    return Alert(
        kind=DRIFT, resource=report.resource, severity=WARNING,
        title=f"{report.resource}: {report.drift:,} records differ from the feed",
        text=(f"Reconcile run {report.run_id}{' (dry run)' if report.dry_run else ''} of "
              f"{report.resource} compared a census of {_figure(report.census)} record(s) "
              f"with {_figure(report.stored)} stored: {_figure(report.missing)} missing, "
              f"{_figure(report.stale)} stale, {_figure(report.gone)} gone "
              f"({report.drift:,} in all; threshold {thresholds.drift_records:,}).\n"
              f"{done}\nIncremental syncs cannot see these differences (records that arrive "
              "with old timestamps, copies that went stale); steady drift points at the "
              "feed or at a sync that loses records."),
    )


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def quota_alert(state: Mapping[str, Any] | None, thresholds: Thresholds) -> Alert | None:
    """The hour quota used beyond the threshold, from the limiter's last observed headers."""
    if not state:
        return None
    limit, available = _number(state.get("hour_limit")), _number(state.get("hour_available"))
    if not limit or available is None:
        return None
    used = min(max((limit - available) / limit, 0.0), 1.0)
    if used < thresholds.quota_fraction:
        return None
    return Alert(
        kind=QUOTA_HIGH, severity=CRITICAL if used >= 1.0 else WARNING,
        title=f"Trestle hour quota {used:.0%} used",
        text=(f"{int(limit - available)} of {int(limit)} requests of this hour's quota are "
              f"used ({used:.1%}, threshold {thresholds.quota_fraction:.0%}). Syncs slow down "
              "and then wait for the next hour when it runs out."),
    )


def auth_alert(error: BaseException | str) -> Alert:
    return Alert(
        kind=AUTH_FAILED, severity=CRITICAL,
        title="Trestle rejected the client credentials",
        text=(f"{error}\nNo resource can sync until TRESTLE_CLIENT_ID / TRESTLE_CLIENT_SECRET "
              "are fixed (`trestle-etl check-config` tests them)."),
    )


def crash_alert(resource: str, error: BaseException | str) -> Alert:
    """A run that could not even be planned (or stopped before its sync log row closed)."""
    return Alert(
        kind=RUN_FAILED, resource=resource, severity=CRITICAL,
        title=f"{resource} sync failed",
        text=f"The {resource} run failed before it finished: {error}",
    )


def stale_alerts(history: Iterable[ResourceHistory], now: datetime,
                 thresholds: Thresholds) -> list[Alert]:
    """Resources without a successful sync for longer than `stale_after`.

    A resource never triggered at all is left alone (a fresh installation); one triggered
    but never successful counts from its first trigger.
    """
    alerts = []
    for item in history:
        since = item.last_success_at or item.first_run_at
        if since is None or now - since <= thresholds.stale_after:
            continue
        minutes = (now - since).total_seconds() / 60
        what = ("has not synced successfully since " + f"{since:%Y-%m-%d %H:%M} UTC"
                if item.last_success_at else "has never synced successfully")
        alerts.append(Alert(
            kind=STALE, resource=item.resource, severity=WARNING,
            title=f"{item.resource} is stale ({minutes:,.0f} min)",
            text=(f"{item.resource} {what} ({minutes:,.0f} minutes; threshold "
                  f"{thresholds.stale_after.total_seconds() / 60:,.0f}). Check that beat and "
                  "the workers run, and the errors in `trestle-etl status`."),
        ))
    return alerts


def lock_alerts(held: Iterable[HeldLock], now: datetime, thresholds: Thresholds) -> list[Alert]:
    """Run locks held by one run for longer than a run is expected to live."""
    alerts = []
    for lock in held:
        age = now - lock.since
        if age <= thresholds.lock_max_age:
            continue
        minutes = age.total_seconds() / 60
        alerts.append(Alert(
            kind=LOCK_HELD, resource=lock.resource, severity=WARNING,
            title=f"{lock.resource} run lock held for {minutes:,.0f} min",
            text=(f"The run lock of {lock.resource} has been held by {lock.owner} since "
                  f"{lock.since:%Y-%m-%d %H:%M} UTC ({minutes:,.0f} minutes; expected at most "
                  f"{thresholds.lock_max_age.total_seconds() / 60:,.0f}). Every other trigger "
                  "of this resource is skipped meanwhile; a stuck run may need its worker "
                  "restarted."),
        ))
    return alerts


def freshness_alerts(figures: Iterable[Freshness], thresholds: Thresholds) -> list[Alert]:
    """Resources whose changes took longer than the threshold to reach the database (p95
    over the last hour), and a Trestle clock ahead of ours, which this measure would hide."""
    alerts = []
    for item in figures:
        if item.p95_s is not None and item.p95_s > thresholds.freshness_p95_s:
            alerts.append(Alert(
                kind=FRESHNESS, resource=item.resource, severity=WARNING,
                title=f"{item.resource} changes take {item.p95_s:,.0f} s to arrive (p95)",
                text=(f"Over the last hour, 95 % of the {item.samples:,} {item.resource} "
                      f"changes stored were in the database within {item.p95_s:,.1f} s of "
                      f"their ModificationTimestamp (p50 {item.p50_s or 0:,.1f} s); the "
                      f"threshold is {thresholds.freshness_p95_s:,.0f} s. A backfill holding "
                      "the resource, a spent polling budget (SYNC_POLL_QUOTA_SHARE) or busy "
                      "workers delay polls; `trestle-etl status` shows each resource's "
                      "poll interval."),
            ))
        if item.ahead and item.ahead_max_s > 1.0:
            alerts.append(Alert(
                kind=FRESHNESS, resource=item.resource, severity=WARNING,
                title=f"Trestle's clock looks {item.ahead_max_s:,.1f} s ahead of ours",
                text=(f"{item.ahead:,} {item.resource} records were stored before the time "
                      "their ModificationTimestamp gives. Check this machine's clock (NTP): a "
                      "clock that is wrong the other way would let late changes slip below "
                      "the watermark (SYNC_SETTLE_SECONDS guards against that)."),
            ))
    return alerts


def clock_alert(warning: str | None) -> Alert | None:
    """Trestle's clock against ours, when it matters (monitoring/freshness.clock_warning)."""
    if warning is None:
        return None
    return Alert(kind=FRESHNESS, severity=WARNING, title="Trestle's clock and ours disagree",
                 text=warning)
