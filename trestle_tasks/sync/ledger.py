"""The window ledger: a Celery run's windows and their leases, in etl_sync_window.

The database, not the broker, knows what a run still owes. Planning writes every window
as `pending`; a window is `queued` when a message for it was sent (with a slot of the
window gate), `running` while a worker walks it and beats its heartbeat, and ends
`succeeded` or `failed` with its outcome; a transient failure puts it back to `pending`
with a time before which it is not handed out again.

Each dispatch gives the window a new `token`, and a delivery runs only with the newest
one: a message the broker hands back late (Redis restores an unacknowledged message only
after its visibility timeout, hours later) finds an old token and is dropped, so nothing
runs twice at once. A `running` window whose heartbeat stopped (a worker killed with
SIGKILL, the machine gone) is handed out again by the watchdog, and counted as a crash;
a window that crashed `max_crashes` times (a worker dying of it every time: out of memory)
fails instead of being redelivered forever.

Every change is one conditional UPDATE whose row count decides it, with times taken from
the database's clock, so concurrent workers, watchdogs and hosts whose clocks disagree
never hand out one window twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.dbclock import db_now, db_now_plus
from trestle_tasks.store.dberrors import DEFAULT_DB_RETRY, in_transaction
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import FAILED, RUNNING, SUCCEEDED, SyncLog
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome

log = logging.getLogger(__name__)

PENDING = "pending"  # planned, or waiting for its retry: no message exists for it
QUEUED = "queued"  # a message with the current token is on its way to a worker
FINISHED = (SUCCEEDED, FAILED)

# What a delivery learns when it asks to run its window.
RUN = "run"  # it owns the window now
STALE = "stale"  # another delivery owns (or finished) it: drop this one
WAIT = "wait"  # the same dispatch is still running elsewhere, its heartbeat fresh
GAVE_UP = "gave_up"  # it crashed too often: failed, not run again


@dataclass(frozen=True)
class LedgerWindow:
    window: Window
    status: str
    token: int
    retries: int
    crashes: int


@dataclass(frozen=True)
class Requeued:
    """What the watchdog did with one window nobody worked on any more."""

    window_id: str
    verdict: str
    gave_up: bool = False  # failed for good: its gate slot is of no more use to it

    def __str__(self) -> str:
        return f"{self.window_id}: {self.verdict}"


class WindowLedger:
    def __init__(self, engine: Engine, *, schema: str | None = None,
                 retry: RetryPolicy = DEFAULT_DB_RETRY) -> None:
        self.engine = engine
        self.retry = retry
        # The plan's header lives in the run's details: the sync log's to read and write.
        self._runs = SyncLog(engine, schema=schema, retry=retry)
        self._rows = bookkeeping(schema)["etl_sync_window"]

    def _tx(self, work: Any) -> Any:
        return in_transaction(self.engine, work, policy=self.retry)

    def _this(self, run_id: str, resource: str, window_id: str | None = None
              ) -> sa.ColumnElement[bool]:
        rows = self._rows
        where = sa.and_(rows.c.run_id == run_id, rows.c.resource == resource)
        return where if window_id is None else sa.and_(where, rows.c.window_id == window_id)

    # -- the plan --

    def record_plan(self, plan: RunPlan) -> None:
        """Keep the plan's header with the run and each window as `pending` (once: a
        planning task delivered twice adds nothing)."""
        self._tx(lambda conn: self.record_plan_in(conn, plan))

    def record_plan_in(self, conn: sa.Connection, plan: RunPlan) -> None:
        """`record_plan` in the caller's transaction (the one that marks the run planned)."""
        rows = self._rows
        self._runs.merge_details_in(conn, plan.run_id, plan.resource, {"plan": plan.header()})
        present = set(conn.execute(sa.select(rows.c.window_id).where(
            self._this(plan.run_id, plan.resource))).scalars())
        fresh = [w for w in plan.windows if w.window_id not in present]
        if fresh:  # started_at is overwritten when the window really starts
            now = datetime.now(UTC)
            conn.execute(rows.insert(), [
                {"run_id": plan.run_id, "resource": plan.resource,
                 "window_id": w.window_id, "window_index": w.index, "status": PENDING,
                 "attempts": 0, "started_at": now, "lower_ticks": w.lower_ticks,
                 "upper_ticks": w.upper_ticks, "expected": w.expected,
                 "lanes": encode_json(list(w.lanes)) if w.lanes else None, "token": 0}
                for w in fresh])

    def header(self, run_id: str, resource: str) -> dict[str, Any] | None:
        """The plan without its windows (RunPlan.header); None for a run planned without
        the ledger (`sync --local`, a reconcile, an older version)."""
        header = self._runs.details(run_id, resource).get("plan")
        return header if isinstance(header, dict) else None

    def plan(self, run_id: str, resource: str) -> RunPlan | None:
        """The run's whole plan as planning made it (None: see `header`)."""
        header = self.header(run_id, resource)
        if header is None:
            return None
        return RunPlan.from_header(header, tuple(w.window for w in
                                                 self.windows(run_id, resource)))

    def windows(self, run_id: str, resource: str) -> list[LedgerWindow]:
        rows = self._rows
        query = sa.select(rows).where(self._this(run_id, resource),
                                      rows.c.window_index.is_not(None)
                                      ).order_by(rows.c.window_index)
        with self.engine.connect() as conn:
            return [_ledger_window(r) for r in conn.execute(query).mappings()]

    def open_runs(self) -> list[tuple[str, str]]:
        """(run_id, resource) of every open run that has ledger windows or a plan, oldest
        first: the runs a watchdog looks after."""
        return self._runs.open_runs_mentioning("plan")

    # -- handing windows out --

    def dispatchable(self, run_id: str, resource: str, limit: int) -> list[LedgerWindow]:
        """Pending windows whose retry time (if any) has come, in plan order."""
        rows = self._rows
        with self.engine.connect() as conn:
            query = sa.select(rows).where(
                self._this(run_id, resource), rows.c.status == PENDING,
                sa.or_(rows.c.not_before.is_(None), rows.c.not_before <= db_now(conn.dialect)),
            ).order_by(rows.c.window_index).limit(limit)
            return [_ledger_window(r) for r in conn.execute(query).mappings()]

    def mark_queued(self, run_id: str, resource: str, window_id: str, token: int) -> int | None:
        """The window's new token, or None when someone else handed it out first."""
        rows = self._rows

        def work(conn: sa.Connection) -> int | None:
            done = conn.execute(sa.update(rows).where(
                self._this(run_id, resource, window_id), rows.c.status == PENDING,
                rows.c.token == token).values(
                status=QUEUED, token=token + 1, heartbeat_at=db_now(conn.dialect)))
            return token + 1 if done.rowcount == 1 else None

        return self._tx(work)

    def give_back(self, run_id: str, resource: str, window_id: str, token: int) -> None:
        """A delivery that found no slot returns its window to `pending`."""
        rows = self._rows
        self._tx(lambda conn: conn.execute(sa.update(rows).where(
            self._this(run_id, resource, window_id), rows.c.token == token,
            rows.c.status.in_((QUEUED, RUNNING))).values(status=PENDING)))

    # -- a delivery's life --

    def claim(self, run_id: str, resource: str, window_id: str, token: int, *,
              stale_s: float, max_crashes: int) -> tuple[str, LedgerWindow | None]:
        """May this delivery (of dispatch `token`) run the window? See RUN, STALE, WAIT,
        GAVE_UP. A redelivery of a dispatch whose worker died takes the window over once
        the dead worker's heartbeat is `stale_s` old, counting a crash."""
        rows = self._rows

        def work(conn: sa.Connection) -> tuple[str, LedgerWindow | None]:
            now = db_now(conn.dialect)
            mine = sa.and_(self._this(run_id, resource, window_id), rows.c.token == token)
            started = conn.execute(sa.update(rows).where(mine, rows.c.status == QUEUED)
                                   .values(status=RUNNING, heartbeat_at=now))
            if started.rowcount == 1:
                return RUN, self._read(conn, run_id, resource, window_id)
            row = self._read(conn, run_id, resource, window_id)
            if row is None or row.token != token or row.status != RUNNING:
                return STALE, row
            lapsed = sa.and_(mine, rows.c.status == RUNNING,
                             rows.c.heartbeat_at <= db_now_plus(conn.dialect, -stale_s))
            if row.crashes + 1 >= max_crashes:
                gave_up = conn.execute(sa.update(rows).where(lapsed).values(
                    crashes=rows.c.crashes + 1, **_crashed_values(row.crashes + 1, row)))
                return (GAVE_UP if gave_up.rowcount == 1 else WAIT), row
            taken = conn.execute(sa.update(rows).where(lapsed).values(
                crashes=rows.c.crashes + 1, heartbeat_at=now))
            return (RUN if taken.rowcount == 1 else WAIT), row

        return self._tx(work)

    def heartbeat(self, run_id: str, resource: str, window_id: str, token: int) -> bool:
        """Show the window's worker alive; False when the window was handed to another
        delivery (this one must stop)."""
        rows = self._rows
        return bool(self._tx(lambda conn: conn.execute(sa.update(rows).where(
            self._this(run_id, resource, window_id), rows.c.token == token,
            rows.c.status.in_((RUNNING, *FINISHED))).values(
            heartbeat_at=db_now(conn.dialect))).rowcount == 1))

    def settle(self, run_id: str, resource: str, window_id: str, token: int,
               outcome: WindowOutcome, *, retry_in_s: float | None = None) -> bool:
        """Record how the delivery ended; with `retry_in_s`, the window is pending again
        from then on. False when the window is no longer this delivery's."""
        rows = self._rows

        def work(conn: sa.Connection) -> bool:
            values: dict[str, Any] = {"outcome": encode_json(outcome.to_dict())}
            if retry_in_s is not None:
                values.update(status=PENDING, retries=rows.c.retries + 1,
                              not_before=db_now_plus(conn.dialect, retry_in_s))
            else:
                values["status"] = outcome.status
            return conn.execute(sa.update(rows).where(
                self._this(run_id, resource, window_id), rows.c.token == token
            ).values(values)).rowcount == 1

        return bool(self._tx(work))

    def retrying(self, run_id: str, resource: str) -> list[tuple[str, int, datetime, str]]:
        """Windows waiting to be retried after a transient failure: (window id, retries so
        far, not before, the failure), for `sync --wait` to say what is retried and when."""
        rows = self._rows
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(
                rows.c.window_id, rows.c.retries, rows.c.not_before, rows.c.error,
            ).where(self._this(run_id, resource), rows.c.status == PENDING,
                    rows.c.retries > 0, rows.c.not_before.is_not(None))).all()
        return [(r.window_id, int(r.retries), r.not_before, r.error or "") for r in found]

    # -- the watchdog's view --

    def requeue_stale(self, run_id: str, resource: str, *, running_stale_s: float,
                      queued_stale_s: float, max_crashes: int,
                      max_retries: int = 0) -> list[Requeued]:
        """Hand back windows nobody works on any more; returns what was done, per window.

        - running, heartbeat older than `running_stale_s`: its worker died. Pending again
          (a crash), or failed once it crashed `max_crashes` times;
        - queued longer than `queued_stale_s` without starting: its message was lost (a
          Redis restart, a worker killed holding it). Pending again, no crash counted;
        - finished but never settled (killed between the two writes, or Redis down at
          the time): a failure is pending again while it has retries left (`max_retries`);
          otherwise the window is settled from its row.
        """
        rows = self._rows
        changes: list[Requeued] = []

        def work(conn: sa.Connection) -> None:
            running_cut = db_now_plus(conn.dialect, -running_stale_s)
            queued_cut = db_now_plus(conn.dialect, -queued_stale_s)
            stale = conn.execute(sa.select(rows).where(
                self._this(run_id, resource), rows.c.window_index.is_not(None), sa.or_(
                    sa.and_(rows.c.status == RUNNING, rows.c.heartbeat_at <= running_cut),
                    sa.and_(rows.c.status == QUEUED, rows.c.heartbeat_at <= queued_cut),
                    sa.and_(rows.c.status.in_(FINISHED), rows.c.outcome.is_(None),
                            sa.or_(rows.c.heartbeat_at.is_(None),
                                   rows.c.heartbeat_at <= running_cut))))).mappings().all()
            for found in stale:
                row = _ledger_window(found)
                same = sa.and_(self._this(run_id, resource, row.window.window_id),
                               rows.c.token == row.token, rows.c.status == row.status)
                if row.status == RUNNING and row.crashes + 1 >= max_crashes:
                    values = {"crashes": rows.c.crashes + 1,
                              **_crashed_values(row.crashes + 1, row)}
                    verdict = f"failed after {row.crashes + 1} crashes"
                elif row.status == RUNNING:
                    values = {"status": PENDING, "crashes": rows.c.crashes + 1,
                              "not_before": None}
                    verdict = "its worker stopped beating: handed out again"
                elif row.status == QUEUED:
                    values = {"status": PENDING}
                    verdict = "its message never started: handed out again"
                elif row.status == FAILED and row.retries < max_retries:
                    values = {"status": PENDING, "retries": rows.c.retries + 1,
                              "not_before": None}
                    verdict = "failed without recording its outcome: handed out again"
                else:
                    values = {"outcome": encode_json(_outcome_from_row(found).to_dict())}
                    verdict = "settled from its sync log row"
                if conn.execute(sa.update(rows).where(same).values(values)).rowcount:
                    changes.append(Requeued(row.window.window_id, verdict,
                                            gave_up=verdict.startswith("failed after")))

        self._tx(work)
        return changes

    def unfinished(self, run_id: str, resource: str) -> int:
        """Windows not yet finished and settled (0: the run is ready to be finalized)."""
        rows = self._rows
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(
                self._this(run_id, resource), rows.c.window_index.is_not(None),
                sa.or_(rows.c.status.not_in(FINISHED), rows.c.outcome.is_(None)))).scalar_one())

    def outcomes(self, run_id: str, resource: str) -> list[WindowOutcome]:
        """The outcome of every finished window, for finalize."""
        rows = self._rows
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(rows).where(
                self._this(run_id, resource), rows.c.window_index.is_not(None),
                rows.c.status.in_(FINISHED))).mappings().all()
        return [WindowOutcome.from_dict(decode_json(r["outcome"])) if r["outcome"]
                else _outcome_from_row(r) for r in found]

    def _read(self, conn: sa.Connection, run_id: str, resource: str,
              window_id: str) -> LedgerWindow | None:
        row = conn.execute(sa.select(self._rows).where(
            self._this(run_id, resource, window_id))).mappings().first()
        return None if row is None else _ledger_window(row)


def _ledger_window(row: Any) -> LedgerWindow:
    lanes = tuple(decode_json(row["lanes"])) if row["lanes"] else ()
    window = Window(int(row["window_index"]), row["lower_ticks"], int(row["upper_ticks"]),
                    row["expected"], lanes=lanes)
    return LedgerWindow(window, row["status"], int(row["token"]), int(row["retries"]),
                        int(row["crashes"]))


def _crashed_values(crashes: int, row: LedgerWindow) -> dict[str, Any]:
    """A window failed for good because its worker kept dying (out of memory, most often)."""
    error = (f"its worker died {crashes} times while walking it (out of memory? see "
             "CELERY_WORKER_MAX_MEMORY_MB); not handed out again")
    outcome = WindowOutcome(row.window.window_id, row.window.index, FAILED, error=error,
                            retriable=False, error_kind="WorkerLostError")
    return {"status": FAILED, "error": error, "outcome": encode_json(outcome.to_dict())}


def _outcome_from_row(row: Any) -> WindowOutcome:
    """A finished window's outcome from its counters, when its worker died before it
    could record the outcome itself. Its failure is taken as transient: it was recorded by
    the window's own error handling, which saw more than this row does."""
    return WindowOutcome(
        row["window_id"], int(row["window_index"]), row["status"],
        fetched=int(row["records_fetched"]), upserted=int(row["records_upserted"]),
        rejected=int(row["records_rejected"]), requests=int(row["api_requests"]),
        error=row["error"], retriable=row["status"] == FAILED,
        retries=int(row["api_retries"]), rate_limited=int(row["api_rate_limited"]))
