"""The sync log (etl_sync_log, one row per run and resource), windows, and watermarks.

Counting is exact under redelivery: a window's counts live in its own etl_sync_window row,
which `start_window` resets (and clears that window's rejects) each time the window
starts, and which the loader increments in the same transaction as the rows it loads.
`close_run` folds the windows into the run's row once; closing again changes nothing.

Watermarks are kept as ticks (100 ns, the server's full seven digits) with the 7-digit
text beside them, plus the key for keyset ties: no rounding can ever skip a record. They
only move forward, and when a fencing token is given, never for a holder whose lock was
taken over (a smaller token than the one stored).

Secrets never reach these tables: error texts are passed through `redact` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import total_ordering
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.logs import redact as redact_secrets
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.dberrors import DEFAULT_DB_RETRY, in_transaction
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.schema import WINDOW_COUNTERS, bookkeeping

PLANNING = "planning"  # the row exists before planning's first request; see sync/plan.py
RUNNING = "running"
OPEN_STATUSES = (PLANNING, RUNNING)  # a run not yet closed
SUCCEEDED = "succeeded"
FAILED = "failed"
PARTIAL = "partial"  # some windows failed; the watermark stays below them
ABANDONED = "abandoned"  # closed by the reaper: nobody worked on it any more
SKIPPED = "skipped"  # a trigger that found the resource busy: recorded, nothing fetched
INTERRUPTED = "interrupted"  # stopped by its operator (Ctrl-C): its lock released at once
# The `details.kind` of a row that sums an hour of one resource's polls (sync/poll.py).
POLLS_KIND = "polls"  # details["kind"] of an hour's row of polls
RECONCILE_KIND = "reconcile"  # details["kind"] of a reconcile's row
STATUSES = (PLANNING, RUNNING, SUCCEEDED, FAILED, PARTIAL, ABANDONED, SKIPPED, INTERRUPTED)

_ERROR_CHARS = 4000


class RowLike(Protocol):
    """What `from_row` reads: a row's values by column name (a RowMapping, or a dict)."""

    def __getitem__(self, column: str, /) -> Any: ...


def redact(text: str | None) -> str | None:
    """The error text as the sync log may keep it: secrets masked (the logs' redactor, so
    configured secret values are caught too), and bounded in length."""
    if text is None:
        return None
    return redact_secrets(text)[:_ERROR_CHARS]


@total_ordering
@dataclass(frozen=True)
class Watermark:
    """A position in (ModificationTimestamp, key) order; the key breaks timestamp ties."""

    ticks: int
    record_key: str | None = None

    @classmethod
    def parse(cls, timestamp: str, record_key: str | None = None) -> Watermark:
        return cls(ODataTimestamp.parse(timestamp).ticks, record_key)

    @property
    def timestamp(self) -> ODataTimestamp:
        return ODataTimestamp(self.ticks)

    @property
    def text(self) -> str:
        """`YYYY-MM-DDTHH:MM:SS.fffffffZ`: usable as is in a $filter."""
        return self.timestamp.to_odata()

    def _order(self) -> tuple[int, int, str]:
        return (self.ticks, 0 if self.record_key is None else 1, self.record_key or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Watermark):
            return NotImplemented
        return self._order() < other._order()


@dataclass(frozen=True)
class SyncRun:
    run_id: str
    resource: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    records_fetched: int
    records_upserted: int
    records_rejected: int
    records_deleted: int
    records_duplicate: int
    api_requests: int
    windows_total: int | None
    windows_ok: int
    windows_failed: int
    watermark_from: str | None
    watermark_to: str | None
    error: str | None
    details: dict[str, Any] | None
    api_retries: int = 0
    api_rate_limited: int = 0  # 429s received
    api_bytes: int = 0  # response bodies as sent on the wire (compressed)

    @classmethod
    def from_row(cls, row: RowLike) -> SyncRun:
        values = {k: row[k] for k in cls.__dataclass_fields__ if k != "details"}
        details = decode_json(row["details"]) if row["details"] else None
        return cls(details=details, **values)


@dataclass(frozen=True)
class SyncWindow:
    run_id: str
    resource: str
    window_id: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    records_fetched: int
    records_upserted: int
    records_rejected: int
    records_duplicate: int
    api_requests: int
    error: str | None
    api_retries: int = 0
    api_rate_limited: int = 0
    api_bytes: int = 0

    @classmethod
    def from_row(cls, row: RowLike) -> SyncWindow:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def peak_in_flight(windows: Iterable[SyncWindow]) -> int:
    """Most windows running at the same moment, from their start and finish times.
    Windows still waiting to be handed out (the Celery ledger's `pending` and `queued`
    rows) are not running, whatever their row's start time says."""
    windows = [w for w in windows if w.status not in ("pending", "queued")]
    events = sorted([(w.started_at, 1) for w in windows] +
                    [(w.finished_at, -1) for w in windows if w.finished_at is not None])
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    return peak


def _now() -> datetime:
    return datetime.now(UTC)


class SyncLog:
    """Reads and writes etl_sync_log, etl_sync_window and etl_watermark."""

    def __init__(self, engine: Engine, *, schema: str | None = None,
                 retry: RetryPolicy = DEFAULT_DB_RETRY) -> None:
        self.engine = engine
        self.schema = schema
        self.retry = retry
        tables = bookkeeping(schema)
        self._log = tables["etl_sync_log"]
        self._windows = tables["etl_sync_window"]
        self._watermarks = tables["etl_watermark"]
        self._rejects = tables["etl_rejects"]

    def _tx(self, work: Any) -> Any:
        return in_transaction(self.engine, work, policy=self.retry)

    # -- a run's details (the window ledger keeps the plan's header there) --

    def details(self, run_id: str, resource: str) -> dict[str, Any]:
        """The run's details ({} for a run without any, or no such run)."""
        log = self._log
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(log.c.details).where(
                log.c.run_id == run_id, log.c.resource == resource)).scalar()
        return decode_json(text) if text else {}

    def merge_details_in(self, conn: sa.Connection, run_id: str, resource: str,
                         extra: Mapping[str, Any]) -> None:
        """`extra` merged into the run's details, in the caller's transaction."""
        log = self._log
        text = conn.execute(sa.select(log.c.details).where(
            log.c.run_id == run_id, log.c.resource == resource)).scalar()
        merged = {**(decode_json(text) if text else {}), **extra}
        conn.execute(sa.update(log).where(log.c.run_id == run_id, log.c.resource == resource)
                     .values(details=encode_json(merged)))

    def open_runs_mentioning(self, key: str) -> list[tuple[str, str]]:
        """(run_id, resource) of every open run whose details hold `key` (as text: a
        cheap test, not a decoding of every open run's details), oldest first."""
        log = self._log
        query = (sa.select(log.c.run_id, log.c.resource, log.c.details)
                 .where(log.c.finished_at.is_(None)).order_by(log.c.started_at))
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return [(run_id, resource) for run_id, resource, text in found
                if text and f'"{key}"' in text]

    # -- runs --

    def open_run(self, run_id: str, resource: str, *, started_at: datetime | None = None,
                 windows_total: int | None = None, watermark_from: str | None = None,
                 watermark_to: str | None = None,
                 details: Mapping[str, Any] | None = None, status: str = RUNNING) -> bool:
        """Start the run's row (`running`, or `planning`); False (and no change) when it is
        already there."""
        if status not in OPEN_STATUSES:
            raise ValueError(f"a run opens as one of {OPEN_STATUSES}, not {status!r}")
        log = self._log

        def work(conn: sa.Connection) -> bool:
            exists = conn.execute(sa.select(log.c.run_id).where(
                log.c.run_id == run_id, log.c.resource == resource)).first()
            if exists:
                return False
            conn.execute(log.insert().values(
                run_id=run_id, resource=resource, started_at=started_at or _now(),
                status=status, windows_total=windows_total, watermark_from=watermark_from,
                watermark_to=watermark_to,
                details=encode_json(dict(details)) if details else None,
            ))
            return True

        try:
            return bool(self._tx(work))
        except Exception as exc:
            # A concurrent open_run inserted first: that is the same run, already open.
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                return False
            raise

    def begin_planning(self, run_id: str, resource: str,
                       details: Mapping[str, Any]) -> SyncRun:
        """Open the run's row as `planning`, before planning's first request, or take an
        existing `planning` row over (a planner that died is replaced under the same run
        id): `details` (who plans, the lock's fence) are merged into it. A row that has
        moved on (planned, or closed) is returned unchanged: the caller must not plan it."""
        log = self._log

        def work(conn: sa.Connection) -> None:
            row = conn.execute(sa.select(log.c.status, log.c.details).where(
                log.c.run_id == run_id, log.c.resource == resource)).first()
            if row is None:
                conn.execute(log.insert().values(
                    run_id=run_id, resource=resource, started_at=_now(), status=PLANNING,
                    details=encode_json(dict(details))))
            elif row.status == PLANNING:
                merged = {**(decode_json(row.details) if row.details else {}), **details}
                conn.execute(sa.update(log).where(
                    log.c.run_id == run_id, log.c.resource == resource,
                    log.c.status == PLANNING).values(details=encode_json(merged)))

        self._tx(work)
        run = self.get_run(run_id, resource)
        if run is None:  # read back what was just written: only a deleted row is missing
            raise RuntimeError(f"run {run_id} of {resource}: its sync log row is gone")
        return run

    def mark_planned(self, conn: sa.Connection, run_id: str, resource: str, *,
                     windows_total: int, watermark_from: str | None,
                     watermark_to: str | None, details: Mapping[str, Any]) -> bool:
        """In the caller's transaction: the `planning` row becomes `running` with its plan's
        figures (`details` merged in, the planning-only keys dropped). False when the row
        is not `planning` any more (closed meanwhile)."""
        log = self._log
        row = conn.execute(sa.select(log.c.details).where(
            log.c.run_id == run_id, log.c.resource == resource,
            log.c.status == PLANNING)).first()
        if row is None:
            return False
        merged = {**(decode_json(row.details) if row.details else {}), **details}
        merged.pop("phase", None)
        done = conn.execute(sa.update(log).where(
            log.c.run_id == run_id, log.c.resource == resource, log.c.status == PLANNING,
        ).values(status=RUNNING, windows_total=windows_total, watermark_from=watermark_from,
                 watermark_to=watermark_to, details=encode_json(merged)))
        return done.rowcount == 1

    def planned_with_fence(self, conn: sa.Connection, run_id: str,
                           resource: str) -> int | None:
        """The fence a planned (no longer `planning`) run was planned under; None when the
        run is still planning, closed unplanned, or unknown."""
        log = self._log
        row = conn.execute(sa.select(log.c.status, log.c.details).where(
            log.c.run_id == run_id, log.c.resource == resource)).first()
        if row is None or row.status == PLANNING or not row.details:
            return None
        fence = decode_json(row.details).get("fence")
        return int(fence) if fence is not None else None

    def in_transaction(self, work: Any) -> Any:
        """Run `work(conn)` in one transaction, retried as every write here is."""
        return self._tx(work)

    def record_skipped(self, run_id: str, resource: str, reason: str,
                       details: Mapping[str, Any] | None = None) -> None:
        """One closed row for a trigger that did not run, so the sync log shows every trigger
        (a run still open under that id, whose planner died, is closed `skipped` so)."""
        log = self._log
        now = _now()
        row = dict(run_id=run_id, resource=resource, started_at=now, finished_at=now,
                   status=SKIPPED, error=redact(reason),
                   details=encode_json(dict(details)) if details else None)

        def work(conn: sa.Connection) -> None:
            status = conn.execute(sa.select(log.c.status).where(
                log.c.run_id == run_id, log.c.resource == resource)).scalar()
            if status is None:
                conn.execute(log.insert().values(row))
            elif status in OPEN_STATUSES:
                conn.execute(sa.update(log).where(
                    log.c.run_id == run_id, log.c.resource == resource,
                    log.c.finished_at.is_(None)).values(
                    status=SKIPPED, finished_at=now, error=redact(reason)))

        self._tx(work)

    def add_counts(self, run_id: str, resource: str, *, fetched: int = 0, upserted: int = 0,
                   rejected: int = 0, deleted: int = 0, duplicate: int = 0,
                   api_requests: int = 0, retries: int = 0, rate_limited: int = 0,
                   api_bytes: int = 0) -> None:
        """Add to the run's counters (atomic increments; safe from concurrent workers).
        Counts from `RecordLoader.load(run_id=…)` are already added: do not add them again."""
        log = self._log
        deltas = {"records_fetched": fetched, "records_upserted": upserted,
                  "records_rejected": rejected, "records_deleted": deleted,
                  "records_duplicate": duplicate, "api_requests": api_requests,
                  "api_retries": retries, "api_rate_limited": rate_limited,
                  "api_bytes": api_bytes}
        changes = {k: log.c[k] + v for k, v in deltas.items() if v}
        if changes:
            self._tx(lambda conn: conn.execute(sa.update(log).where(
                log.c.run_id == run_id, log.c.resource == resource).values(changes)))

    def close_run(self, run_id: str, resource: str, *, status: str,
                  error: str | None = None, finished_at: datetime | None = None,
                  details: Mapping[str, Any] | None = None) -> SyncRun | None:
        """Finish the run: fold its windows into its counters, set status and end time.

        Idempotent: a run already closed is returned unchanged.
        """
        if status not in STATUSES or status in OPEN_STATUSES:
            raise ValueError(f"a run closes as one of {STATUSES[2:]}, not {status!r}")
        log, windows = self._log, self._windows

        def work(conn: sa.Connection) -> None:
            sums = conn.execute(
                sa.select(
                    *[sa.func.coalesce(sa.func.sum(windows.c[c]), 0).label(c)
                      for c in WINDOW_COUNTERS],
                    sa.func.sum(sa.case((windows.c.status == SUCCEEDED, 1), else_=0))
                    .label("ok"),
                    sa.func.sum(sa.case((windows.c.status == FAILED, 1), else_=0))
                    .label("failed"),
                ).where(windows.c.run_id == run_id, windows.c.resource == resource)
            ).mappings().one()
            values: dict[str, Any] = {c: log.c[c] + int(sums[c]) for c in WINDOW_COUNTERS}
            values.update(status=status, finished_at=finished_at or _now(),
                          error=redact(error),
                          windows_ok=log.c.windows_ok + int(sums["ok"] or 0),
                          windows_failed=log.c.windows_failed + int(sums["failed"] or 0))
            if details is not None:
                values["details"] = encode_json(dict(details))
            conn.execute(sa.update(log).where(
                log.c.run_id == run_id, log.c.resource == resource,
                log.c.finished_at.is_(None)).values(values))

        self._tx(work)
        return self.get_run(run_id, resource)

    def get_run(self, run_id: str, resource: str) -> SyncRun | None:
        """The run; while it is open, its windows' counts are included."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self._log).where(
                self._log.c.run_id == run_id, self._log.c.resource == resource)
            ).mappings().first()
            if row is None:
                return None
            values: RowLike = row
            if row["finished_at"] is None:
                values = self._with_live_windows(conn, dict(row))
        return SyncRun.from_row(values)

    def _with_live_windows(self, conn: sa.Connection, row: dict[str, Any]) -> dict[str, Any]:
        windows = self._windows
        sums = conn.execute(sa.select(
            *[sa.func.coalesce(sa.func.sum(windows.c[c]), 0).label(c) for c in WINDOW_COUNTERS]
        ).where(windows.c.run_id == row["run_id"], windows.c.resource == row["resource"])
        ).mappings().one()
        for c in WINDOW_COUNTERS:
            row[c] = int(row[c]) + int(sums[c])
        return row

    def recent_runs(self, *, limit: int = 20, resource: str | None = None) -> list[SyncRun]:
        query = sa.select(self._log).order_by(self._log.c.started_at.desc()).limit(limit)
        if resource is not None:
            query = query.where(self._log.c.resource == resource)
        with self.engine.connect() as conn:
            return [SyncRun.from_row(r) for r in conn.execute(query).mappings()]

    def stale_runs(self, older_than: timedelta) -> list[SyncRun]:
        """Runs still open that started more than `older_than` ago (for the reaper)."""
        cutoff = _now() - older_than
        query = sa.select(self._log).where(
            self._log.c.finished_at.is_(None), self._log.c.started_at < cutoff)
        with self.engine.connect() as conn:
            return [SyncRun.from_row(r) for r in conn.execute(query).mappings()]

    def unplanned_open_runs(self) -> list[SyncRun]:
        """Open runs that no window ledger drives: runs being planned, reconciles, and
        runs of one process (`sync --local`). Nothing but their lock's lease shows them
        alive, so the watchdog looks after them by that."""
        query = sa.select(self._log).where(self._log.c.finished_at.is_(None))
        with self.engine.connect() as conn:
            runs = [SyncRun.from_row(r) for r in conn.execute(query).mappings()]
        return [r for r in runs if "plan" not in (r.details or {})]

    def note_replan(self, run_id: str, resource: str, replans_seen: int) -> bool:
        """Count one more re-plan of a `planning` run whose planner died; False when it
        was counted already (two watchdogs at once: only one sends the plan again)."""
        log = self._log

        def work(conn: sa.Connection) -> bool:
            text = conn.execute(sa.select(log.c.details).where(
                log.c.run_id == run_id, log.c.resource == resource,
                log.c.status == PLANNING)).scalar()
            details = decode_json(text) if text else {}
            if int(details.get("replans", 0)) != replans_seen:
                return False
            details["replans"] = replans_seen + 1
            # Compare-and-set on the whole text: a concurrent count changed it.
            done = conn.execute(sa.update(log).where(
                log.c.run_id == run_id, log.c.resource == resource,
                log.c.status == PLANNING, log.c.details == text,
            ).values(details=encode_json(details)))
            return done.rowcount == 1

        return bool(self._tx(work))

    # -- windows --

    # -- polls (sync/poll.py): one row per resource and hour, not one per poll --

    def open_poll_log(self, run_id: str, resource: str, *,
                      watermark_from: str | None) -> None:
        """The hour's poll row, created closed (`succeeded`) so that no reaper, watchdog or
        open-run count ever takes it for a run in progress; the loader adds the polls'
        record counts to it. Nothing happens when it exists."""
        log = self._log
        now = _now()

        def work(conn: sa.Connection) -> None:
            if conn.execute(sa.select(log.c.run_id).where(
                    log.c.run_id == run_id, log.c.resource == resource)).first() is None:
                conn.execute(log.insert().values(
                    run_id=run_id, resource=resource, started_at=now, finished_at=now,
                    status=SUCCEEDED, watermark_from=watermark_from,
                    details=encode_json({"kind": POLLS_KIND})))

        try:
            self._tx(work)
        except Exception as exc:  # another worker's poll created it a moment ago
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise

    def record_poll(self, run_id: str, resource: str, *, failed: bool,
                    error: str | None = None, watermark_to: str | None = None,
                    api_requests: int = 0, retries: int = 0, rate_limited: int = 0,
                    api_bytes: int = 0, tallies: Mapping[str, int] | None = None) -> None:
        """Add one poll to its hour's row: its requests, its outcome counted in `details`
        (`tallies` are added to what is there), the row's status and error those of the
        latest poll, and `watermark_to` where it moved the watermark."""
        log = self._log

        def work(conn: sa.Connection) -> None:
            row = conn.execute(sa.select(log.c.details).where(
                log.c.run_id == run_id, log.c.resource == resource)).first()
            if row is None:
                return
            details = decode_json(row.details) if row.details else {}
            for name, value in (tallies or {}).items():
                details[name] = int(details.get(name) or 0) + int(value)
            if failed and error:
                details["last_error"] = redact(error)
            values: dict[str, Any] = {
                "status": FAILED if failed else SUCCEEDED, "finished_at": _now(),
                "error": redact(error) if failed else None, "details": encode_json(details),
                "api_requests": log.c.api_requests + api_requests,
                "api_retries": log.c.api_retries + retries,
                "api_rate_limited": log.c.api_rate_limited + rate_limited,
                "api_bytes": log.c.api_bytes + api_bytes}
            if watermark_to is not None:
                values["watermark_to"] = watermark_to
            conn.execute(sa.update(log).where(
                log.c.run_id == run_id, log.c.resource == resource).values(values))

        self._tx(work)

    def start_window(self, run_id: str, resource: str, window_id: str) -> None:
        """(Re)start a window: zero its counters and drop rejects of an earlier attempt."""
        windows, rejects = self._windows, self._rejects
        zero = dict.fromkeys(WINDOW_COUNTERS, 0)

        def work(conn: sa.Connection) -> None:
            conn.execute(sa.delete(rejects).where(
                rejects.c.run_id == run_id, rejects.c.resource == resource,
                rejects.c.window_id == window_id))
            done = conn.execute(sa.update(windows).where(
                windows.c.run_id == run_id, windows.c.resource == resource,
                windows.c.window_id == window_id).values(
                status=RUNNING, attempts=windows.c.attempts + 1, started_at=_now(),
                finished_at=None, error=None, **zero))
            if done.rowcount == 0:
                conn.execute(windows.insert().values(
                    run_id=run_id, resource=resource, window_id=window_id, status=RUNNING,
                    attempts=1, started_at=_now(), **zero))

        self._tx(work)

    def finish_window(self, run_id: str, resource: str, window_id: str, *, status: str,
                      api_requests: int = 0, retries: int = 0, rate_limited: int = 0,
                      api_bytes: int = 0, error: str | None = None) -> None:
        if status not in (SUCCEEDED, FAILED):
            raise ValueError("a window finishes as succeeded or failed")
        windows = self._windows
        self._tx(lambda conn: conn.execute(sa.update(windows).where(
            windows.c.run_id == run_id, windows.c.resource == resource,
            windows.c.window_id == window_id).values(
            status=status, finished_at=_now(), error=redact(error),
            api_requests=windows.c.api_requests + api_requests,
            api_retries=windows.c.api_retries + retries,
            api_rate_limited=windows.c.api_rate_limited + rate_limited,
            api_bytes=windows.c.api_bytes + api_bytes)))

    def windows(self, run_id: str, resource: str) -> list[SyncWindow]:
        query = sa.select(self._windows).where(
            self._windows.c.run_id == run_id, self._windows.c.resource == resource
        ).order_by(self._windows.c.window_id)
        with self.engine.connect() as conn:
            return [SyncWindow.from_row(r) for r in conn.execute(query).mappings()]

    # -- watermarks --

    def read_watermark(self, resource: str) -> Watermark | None:
        marks = self._watermarks
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(marks.c.ticks, marks.c.record_key).where(
                marks.c.resource == resource)).first()
        return None if row is None else Watermark(int(row[0]), row[1])

    def read_watermark_fence(self, resource: str) -> tuple[Watermark, int | None] | None:
        """The watermark with the fence of the run that last moved it (None: never set)."""
        marks = self._watermarks
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(marks.c.ticks, marks.c.record_key, marks.c.fence)
                               .where(marks.c.resource == resource)).first()
        if row is None:
            return None
        return Watermark(int(row[0]), row[1]), None if row[2] is None else int(row[2])

    def advance_watermark(self, resource: str, to: Watermark, *, run_id: str | None = None,
                          fence: int | None = None) -> bool:
        """Move the watermark forward to `to`; False when it is already there or beyond,
        or when `fence` is older than the token of the last holder that advanced it."""
        marks = self._watermarks
        values = {"ticks": to.ticks, "timestamp": to.text, "record_key": to.record_key,
                  "run_id": run_id, "updated_at": _now()}
        if fence is not None:
            values["fence"] = fence
        behind: sa.ColumnElement[bool] = marks.c.ticks < to.ticks
        if to.record_key is not None:
            behind = sa.or_(behind, sa.and_(marks.c.ticks == to.ticks, sa.or_(
                marks.c.record_key.is_(None), marks.c.record_key < to.record_key)))
        fenced = sa.true() if fence is None else sa.or_(marks.c.fence.is_(None),
                                                        marks.c.fence <= fence)

        def work(conn: sa.Connection) -> bool:
            done = conn.execute(sa.update(marks).where(
                marks.c.resource == resource, behind, fenced).values(values))
            if done.rowcount:
                return True
            exists = conn.execute(sa.select(marks.c.resource).where(
                marks.c.resource == resource)).first()
            if exists:
                return False
            conn.execute(marks.insert().values(resource=resource, **values))
            return True

        return bool(self._tx(work))

    def reset_watermark(self, resource: str) -> None:
        """Forget the watermark (a `--full` resync starts from the beginning)."""
        marks = self._watermarks
        self._tx(lambda conn: conn.execute(sa.delete(marks).where(marks.c.resource == resource)))

    def watermarks(self) -> dict[str, Watermark]:
        marks = self._watermarks
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(marks.c.resource, marks.c.ticks, marks.c.record_key))
            return {r[0]: Watermark(int(r[1]), r[2]) for r in rows}


