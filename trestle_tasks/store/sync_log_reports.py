"""The sync log read for figures: what monitoring/ (usage, metrics, alert rules, drift)
asks of etl_sync_log and of the windows of runs still open. Those modules build their
figures from these answers and hold no SQL; writing the sync log is sync_log.py's.

Aggregates skip the column types' result processing, so the datetimes they return are
normalized to aware UTC here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import (
    FAILED,
    POLLS_KIND,
    RECONCILE_KIND,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    SyncRun,
)

_PAGE = 20  # rows read at a time while looking for a resource's latest run of a kind


def counter_since(store: Store, since: datetime, counter: str = "api_requests") -> int:
    """A counter's sum (`api_requests`, `api_bytes`…) over the runs started since `since`:
    a closed run holds its windows' counts; a run still open has them only in its windows."""
    tables = bookkeeping(store.schema)
    log, windows = tables["etl_sync_log"], tables["etl_sync_window"]
    open_windows = (
        sa.select(sa.func.coalesce(sa.func.sum(windows.c[counter]), 0))
        .select_from(windows.join(log, sa.and_(windows.c.run_id == log.c.run_id,
                                               windows.c.resource == log.c.resource)))
        .where(log.c.started_at >= since, log.c.finished_at.is_(None))
    )
    with store.engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(log.c[counter]), 0))
                              .where(log.c.started_at >= since)).scalar()
        in_flight = conn.execute(open_windows).scalar()
    return int(logged or 0) + int(in_flight or 0)


def first_runs_and_last_syncs(store: Store, resources: Iterable[str]
                              ) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """Each resource's first run (any kind) and last successful sync run. Only sync runs
    count as successes: the rows with a planned upper bound (`watermark_to`); a reconcile
    has none, and its success says nothing about freshness."""
    log = bookkeeping(store.schema)["etl_sync_log"]
    wanted = list(resources)
    last_success = (
        sa.select(log.c.resource, sa.func.max(log.c.finished_at))
        .where(log.c.resource.in_(wanted), log.c.status == SUCCEEDED,
               log.c.watermark_to.is_not(None))
        .group_by(log.c.resource)
    )
    first_run = (sa.select(log.c.resource, sa.func.min(log.c.started_at))
                 .where(log.c.resource.in_(wanted)).group_by(log.c.resource))
    with store.engine.connect() as conn:
        successes = {r: utc(at) for r, at in conn.execute(last_success) if at is not None}
        firsts = {r: utc(at) for r, at in conn.execute(first_run) if at is not None}
    return firsts, successes


def utc(value: datetime | str) -> datetime:
    """An aggregate's datetime as aware UTC (SQLite hands them back as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class SyncLogTotals:
    """The sync log summed per resource, as the metrics endpoint exports it."""

    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # resource -> column -> n
    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # (resource, status) -> n
    reconcile_runs: dict[tuple[str, str], int] = field(default_factory=dict)
    last_success: dict[str, datetime] = field(default_factory=dict)  # of a sync run
    last_duration_s: dict[str, float] = field(default_factory=dict)  # latest finished run


def sync_log_totals(store: Store, counters: Sequence[str],
                    window_counters: Sequence[str]) -> SyncLogTotals:
    """Each resource's `counters` summed over its rows, plus `window_counters` of its runs
    still open (their windows hold them until the run closes); runs by status, reconciles
    apart; the last successful sync and the latest run's duration."""
    tables = bookkeeping(store.schema)
    log, windows = tables["etl_sync_log"], tables["etl_sync_window"]
    totals = SyncLogTotals()
    with store.engine.connect() as conn:
        logged = sa.select(log.c.resource, *[
            sa.func.coalesce(sa.func.sum(log.c[c]), 0).label(c) for c in counters
        ]).group_by(log.c.resource)
        for row in conn.execute(logged).mappings():
            totals.counters[row["resource"]] = {c: int(row[c]) for c in counters}
        live = (
            sa.select(log.c.resource, *[
                sa.func.coalesce(sa.func.sum(windows.c[c]), 0).label(c) for c in window_counters
            ])
            .select_from(windows.join(log, sa.and_(windows.c.run_id == log.c.run_id,
                                                   windows.c.resource == log.c.resource)))
            .where(log.c.finished_at.is_(None))
            .group_by(log.c.resource)
        )
        for row in conn.execute(live).mappings():
            summed = totals.counters.setdefault(row["resource"], dict.fromkeys(counters, 0))
            for column in window_counters:
                summed[column] += int(row[column])
        reconcile = _of_kind(log, RECONCILE_KIND)
        for target, kind in ((totals.runs, sa.not_(reconcile)),
                             (totals.reconcile_runs, reconcile)):
            by_status = sa.select(log.c.resource, log.c.status, sa.func.count()).where(
                kind).group_by(log.c.resource, log.c.status)
            target.update({(r, s): int(n) for r, s, n in conn.execute(by_status)})
        succeeded = sa.select(log.c.resource, sa.func.max(log.c.finished_at)).where(
            log.c.status == SUCCEEDED, sa.not_(reconcile)).group_by(log.c.resource)
        totals.last_success = {r: utc(t) for r, t in conn.execute(succeeded) if t}
        totals.last_duration_s = _last_durations(conn, log)
    return totals


def _of_kind(log: sa.Table, kind: str) -> sa.ColumnElement[bool]:
    """A row whose details (compact JSON text, jsontext.py) say `"kind":"<kind>"`."""
    return sa.and_(log.c.details.is_not(None), log.c.details.like(f'%"kind":"{kind}"%'))


def _last_durations(conn: sa.Connection, log: sa.Table) -> dict[str, float]:
    """Start-to-finish seconds of each resource's latest finished (not skipped) sync run."""
    # An hour of polls is one row, not one run: its span says nothing of a run's duration.
    finished = sa.and_(log.c.finished_at.is_not(None), log.c.status != SKIPPED,
                       sa.not_(_of_kind(log, RECONCILE_KIND)),
                       sa.not_(_of_kind(log, POLLS_KIND)))
    latest = (sa.select(log.c.resource, sa.func.max(log.c.started_at).label("at"))
              .where(finished).group_by(log.c.resource).subquery())
    query = sa.select(log.c.resource, log.c.started_at, log.c.finished_at).join(
        latest, sa.and_(log.c.resource == latest.c.resource,
                        log.c.started_at == latest.c.at)).where(finished)
    return {r: max((f - s).total_seconds(), 0.0) for r, s, f in conn.execute(query)}


def latest_finished_runs(store: Store, mentioning: str,
                         accept: Callable[[SyncRun], bool]) -> dict[str, SyncRun]:
    """Each resource's newest finished run (skipped triggers are not runs) whose details
    mention `mentioning` and that `accept` takes. The LIKE only narrows the rows read;
    `accept` decides, newest first, a page at a time: usually the first row is the answer."""
    log = bookkeeping(store.schema)["etl_sync_log"]
    candidates = sa.and_(log.c.finished_at.is_not(None),
                         log.c.status.not_in((RUNNING, SKIPPED)),
                         log.c.details.like(f"%{mentioning}%"))
    latest: dict[str, SyncRun] = {}
    with store.engine.connect() as conn:
        resources = [r for (r,) in conn.execute(
            sa.select(log.c.resource).where(candidates).distinct())]
        for resource in sorted(resources):
            found = _newest_accepted(conn, log, sa.and_(candidates, log.c.resource == resource),
                                     accept)
            if found is not None:
                latest[resource] = found
    return latest


def _newest_accepted(conn: sa.Connection, log: sa.Table, where: sa.ColumnElement[bool],
                     accept: Callable[[SyncRun], bool]) -> SyncRun | None:
    query = sa.select(log).where(where).order_by(log.c.started_at.desc(), log.c.run_id.desc())
    offset = 0
    while True:
        rows = conn.execute(query.offset(offset).limit(_PAGE)).mappings().all()
        for row in rows:
            run = SyncRun.from_row(row)
            if accept(run):
                return run
        if len(rows) < _PAGE:
            return None
        offset += _PAGE


@dataclass(frozen=True)
class RunProgress:
    """How far a run's windows have got (the window ledger's rows), for `status`."""

    windows_total: int
    windows_done: int  # succeeded
    windows_failed: int
    fetched: int  # records fetched so far, every window (a retried one counts anew)
    expected: int | None  # what the census said the windows hold (None: not known)

    @property
    def fraction(self) -> float | None:
        if not self.expected:
            return None
        return min(self.fetched / self.expected, 1.0)

    def left_s(self, elapsed_s: float) -> float | None:
        """Seconds left at the rate so far (None before the first record, or without an
        expected total); 0 once everything expected is fetched."""
        if not self.expected or self.fetched <= 0 or elapsed_s <= 0:
            return None
        return max(self.expected - self.fetched, 0) * elapsed_s / self.fetched


def run_progress(store: Store, runs: Iterable[tuple[str, str]]
                 ) -> dict[tuple[str, str], RunProgress]:
    """The progress of each (run_id, resource) that has ledger windows."""
    wanted = list(runs)
    if not wanted:
        return {}
    windows = bookkeeping(store.schema)["etl_sync_window"]
    done = sa.func.sum(sa.case((windows.c.status == SUCCEEDED, 1), else_=0))
    failed = sa.func.sum(sa.case((windows.c.status == FAILED, 1), else_=0))
    query = (sa.select(windows.c.run_id, windows.c.resource, sa.func.count(), done, failed,
                       sa.func.coalesce(sa.func.sum(windows.c.records_fetched), 0),
                       sa.func.sum(windows.c.expected))
             .where(sa.tuple_(windows.c.run_id, windows.c.resource).in_(wanted),
                    windows.c.window_index.is_not(None))
             .group_by(windows.c.run_id, windows.c.resource))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {(run_id, resource): RunProgress(int(total), int(ok or 0), int(bad or 0),
                                            int(fetched), int(expected) if expected else None)
            for run_id, resource, total, ok, bad, fetched, expected in rows}
