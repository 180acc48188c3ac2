"""Drift as each reconcile recorded it: the figures in its sync-log row's `details`.

A reconcile writes `{"kind": "reconcile", "dry_run", "census", "stored", "missing",
"stale", "gone", "restored", "fetched", "deleted", "census_requests", "repair_requests"}`.
Rows written before the census compared timestamps carry only `census`, `stored`,
`deleted` and `restored`: a figure a row does not carry is None (unknown), never a guess,
so `status` shows it as unknown and metrics leave its series out. `status`, the metrics
and the drift alert all read the rows through `reconcile_report`, so they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import RUNNING, SKIPPED, SyncRun

if TYPE_CHECKING:  # the alert rules import this module: keep it free of the store's imports
    from trestle_tasks.store.store import Store

RECONCILE = "reconcile"
DRIFT_KINDS = ("missing", "stale", "gone")
_PAGE = 20  # rows read at a time while looking for a resource's latest reconcile


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
    log = bookkeeping(store.schema)["etl_sync_log"]
    # The LIKE only narrows the rows read; each is confirmed by decoding its details.
    candidates = sa.and_(log.c.finished_at.is_not(None),
                         log.c.status.not_in((RUNNING, SKIPPED)),
                         log.c.details.like(f"%{RECONCILE}%"))
    accept: Callable[[ReconcileReport], bool] = (
        (lambda report: report.measured) if measured_only else (lambda report: True))
    latest: dict[str, ReconcileReport] = {}
    with store.engine.connect() as conn:
        resources = [r for (r,) in conn.execute(
            sa.select(log.c.resource).where(candidates).distinct())]
        for resource in sorted(resources):
            found = _latest_of(conn, log, sa.and_(candidates, log.c.resource == resource),
                               accept)
            if found is not None:
                latest[resource] = found
    return latest


def _latest_of(conn: sa.Connection, log: sa.Table, where: sa.ColumnElement[bool],
               accept: Callable[[ReconcileReport], bool]) -> ReconcileReport | None:
    """Newest first, a page at a time: usually the first row is the answer."""
    query = sa.select(log).where(where).order_by(log.c.started_at.desc(), log.c.run_id.desc())
    offset = 0
    while True:
        rows = conn.execute(query.offset(offset).limit(_PAGE)).mappings().all()
        for row in rows:
            report = reconcile_report(SyncRun.from_row(row))
            if report is not None and accept(report):
                return report
        if len(rows) < _PAGE:
            return None
        offset += _PAGE
