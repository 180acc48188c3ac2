"""Drift as each reconcile recorded it: the figures in its sync-log row's `details`.

A reconcile writes `{"kind": "reconcile", "dry_run", "census", "stored", "missing",
"stale", "gone", "restored", "fetched", "deleted", "census_requests", "repair_requests"}`.
Rows written before the census compared timestamps carry only `census`, `stored`,
`deleted` and `restored`: a figure a row does not carry is None (unknown), never a guess,
so `status` shows it as unknown and metrics leave its series out. `status`, the metrics
and the drift alert all read the rows through `reconcile_report`, so they agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trestle_tasks.store.sync_log import RECONCILE_KIND, SyncRun

if TYPE_CHECKING:  # the alert rules import this module: keep it free of the store's imports
    from trestle_tasks.store.store import Store

RECONCILE = RECONCILE_KIND
DRIFT_KINDS = ("missing", "stale", "gone")


@dataclass(frozen=True)
class ReconcileReport:
    """One reconcile run: when, how it ended, and what it found and did."""

    run_id: str
    resource: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    dry_run: bool
    api_requests: int
    error: str | None
    census: int | None = None  # (key, timestamp) pairs in the feed's census
    stored: int | None = None  # live records in the store before the repair
    missing: int | None = None
    stale: int | None = None
    gone: int | None = None
    restored: int | None = None
    fetched: int | None = None
    deleted: int | None = None
    census_requests: int | None = None
    repair_requests: int | None = None

    @property
    def measured(self) -> bool:
        """The census finished and was compared: its figures describe the replica."""
        return self.census is not None

    @property
    def drift(self) -> int:
        """Records that differed from the feed (unknown kinds count as none)."""
        return sum(getattr(self, kind) or 0 for kind in DRIFT_KINDS)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift if self.measured else None}


def _count(value: Any) -> int | None:
    # A figure that is absent or not a number is unknown: the row came from another version.
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_reconcile(run: SyncRun) -> bool:
    return (run.details or {}).get("kind") == RECONCILE


def reconcile_report(run: SyncRun) -> ReconcileReport | None:
    """The run's figures, or None when the run is not a reconcile."""
    if not is_reconcile(run):
        return None
    details = run.details or {}
    counts = {name: _count(details.get(name)) for name in (
        "census", "stored", "missing", "stale", "gone", "restored", "fetched", "deleted",
        "census_requests", "repair_requests")}
    return ReconcileReport(
        run_id=run.run_id, resource=run.resource, status=run.status,
        started_at=run.started_at, finished_at=run.finished_at,
        dry_run=details.get("dry_run") is True, api_requests=run.api_requests,
        error=run.error, **counts)


def latest_reconciles(store: Store, *, measured_only: bool = False
                      ) -> dict[str, ReconcileReport]:
    """Each resource's latest finished reconcile (skipped triggers are not runs).

    `measured_only`: the latest whose census finished, so a reconcile that failed part way
    does not hide the last drift that was measured.
    """
    from trestle_tasks.store.sync_log_reports import latest_finished_runs

    def accept(run: SyncRun) -> bool:
        report = reconcile_report(run)
        return report is not None and (report.measured or not measured_only)

    runs = latest_finished_runs(store, RECONCILE, accept)
    return {resource: report for resource, run in runs.items()
            if (report := reconcile_report(run)) is not None}
