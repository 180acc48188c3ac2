"""Sending a run to the Celery workers and waiting for it, for `trestle-etl sync` and the
Celery demo: the Celery layer's job, beside tasks.py, not a use case of sync/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trestle_tasks.errors import FatalError, is_retriable
from trestle_tasks.sync.model import new_run_id

if TYPE_CHECKING:
    from trestle_tasks.store.store import Store
    from trestle_tasks.store.sync_log import SyncRun

# The plan task's registered name (tasks.py): sent by name, see dispatch().
PLAN_SYNC_TASK = "trestle.plan_sync"


@dataclass(frozen=True)
class Dispatched:
    run_id: str
    task_ids: dict[str, str]  # resource -> plan_sync task id


def dispatch(resources: Iterable[str], *, full: bool, feed: str = "default") -> Dispatched:
    # Sent by name through the bare Celery app (its routes still apply): importing the
    # tasks module (the store, SQLAlchemy, the sync code) costs about half a second that
    # `sync --wait` would otherwise spend before the run even starts.
    from trestle_tasks.celery_app import app

    run_id = new_run_id()
    task_ids = {}
    for resource in resources:
        # The default feed's message is what it always was (an older worker reads it).
        kwargs: dict[str, Any] = {"full": full, "run_id": run_id,
                                  **({} if feed == "default" else {"feed": feed})}
        result = app.send_task(PLAN_SYNC_TASK, args=(resource,), kwargs=kwargs)
        task_ids[resource] = result.id
    return Dispatched(run_id, task_ids)


@dataclass(frozen=True)
class Finished:
    resource: str
    run: SyncRun | None
    skipped_reason: str | None = None


@dataclass(frozen=True)
class _Attempt:
    """The run attempt being followed for one resource (a whole-run retry is a new one)."""

    run_id: str
    task_id: str | None


Note = Callable[[str], None]


def wait(
    dispatched: Dispatched,
    store: Store,
    *,
    timeout_s: float,
    poll_s: float = 0.5,  # one indexed read per resource: the end is told within 0.5 s
    closing_poll_s: float = 0.1,
    on_progress: Callable[[int, int], None] | None = None,
    on_note: Note | None = None,
) -> list[Finished]:
    """Follow every resource's run to its true end, as the sync log tells it.

    A run retried as a whole is followed into its next attempt (`on_note` says when that
    is due); a database or Redis that stops answering for a while (a restart) is waited
    out, not taken for the end of the run. Only errors that are not transient end it early.

    Once every record the runs expected has been fetched, only loading the last pages and
    finalizing are left: the sync log is then read every `closing_poll_s`, so a short run
    is not reported up to `poll_s` after it closed.
    """
    from trestle_tasks.store.sync_log import RUNNING

    deadline = time.monotonic() + timeout_s
    note = on_note or (lambda _text: None)
    following = {r: _Attempt(dispatched.run_id, t) for r, t in dispatched.task_ids.items()}
    finished: dict[str, Finished] = {}
    outage = _Outage(note)
    sync_log = _SyncLog(store)
    while True:
        fetched = expected = 0
        for resource, attempt in following.items():
            if resource in finished:
                continue
            try:
                run = _look(sync_log, resource, attempt,
                            planning_overdue=time.monotonic() > deadline)
            except Exception as error:
                if not is_retriable(error):
                    raise
                outage.seen(error)
                continue
            outage.over()
            if run is None:
                continue  # not planned yet
            if isinstance(run, Finished):
                finished[resource] = run
            elif run.status == RUNNING:
                fetched += run.records_fetched
                expected += int((run.details or {}).get("expected_records", 0))
            elif (retry := (run.details or {}).get("retry")) is not None:
                note(_retry_note(run, retry))
                following[resource] = _Attempt(retry["run_id"], retry.get("task_id"))
            else:
                finished[resource] = Finished(resource, run)
        if on_progress is not None:
            on_progress(fetched, expected)
        if all(resource in finished for resource in dispatched.task_ids):
            return [finished[r] for r in dispatched.task_ids]
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{r} (run {following[r].run_id})"
                                for r in dispatched.task_ids if r not in finished)
            raise FatalError(f"still running after {timeout_s:.0f} s: {waiting}; see "
                             "`trestle-etl status`")
        time.sleep(closing_poll_s if 0 < expected <= fetched else poll_s)


def _look(sync_log: _SyncLog, resource: str, attempt: _Attempt, *,
          planning_overdue: bool) -> SyncRun | Finished | None:
    """The attempt's run from the sync log (its live window counts included); a Finished
    for a skipped trigger; None while it is not planned yet."""
    from trestle_tasks.store.sync_log import SKIPPED

    run = sync_log.run(attempt.run_id, resource)
    if run is not None and run.status == SKIPPED:
        return Finished(resource, None, run.error)
    if run is not None:
        return run
    answer = _plan_state(resource, attempt.task_id) if attempt.task_id else None
    if answer is not None and answer.get("status") == "skipped":
        return Finished(resource, None, answer.get("reason"))
    if planning_overdue:
        raise FatalError(f"no worker planned the {resource} run in time: is a worker "
                         "running (`celery -A trestle_tasks worker`)?")
    return None


class _SyncLog:
    """Runs from the sync log; on a new database the first run creates it: until then
    nothing is planned yet."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._exists = False

    def run(self, run_id: str, resource: str) -> SyncRun | None:
        import sqlalchemy as sa

        if not self._exists:
            self._exists = sa.inspect(self._store.engine).has_table(
                "etl_sync_log", schema=self._store.schema)
        return self._store.sync_log.get_run(run_id, resource) if self._exists else None


def _plan_state(resource: str, task_id: str) -> dict[str, Any] | None:
    """The plan_sync task's return value once it succeeded (None before that), read from
    the result backend by polling: no subscription is left open when the command exits."""
    from trestle_tasks.celery_app import app

    meta = app.backend.get_task_meta(task_id)
    state = meta.get("status")
    if state == "SUCCESS":
        return dict(meta.get("result") or {})
    if state in ("FAILURE", "REVOKED"):
        raise FatalError(f"planning the {resource} run failed: {meta.get('result')}")
    return None


def _retry_note(run: SyncRun, retry: dict[str, Any]) -> str:
    due = retry.get("due_at", "")
    try:
        when = datetime.fromisoformat(due).astimezone(UTC).strftime("%H:%M:%S UTC")
    except ValueError:
        when = due or "later"
    return (f"{run.resource}: run {run.run_id} {run.status} after transient failures; "
            f"retried as a whole at {when} (in {float(retry.get('delay_s', 0)):.0f} s, "
            f"attempt {retry.get('attempt')} of {retry.get('of')}) as run "
            f"{retry['run_id']}: waiting for it")


class _Outage:
    """Says once that the database or Redis stopped answering, and once that it is back."""

    def __init__(self, note: Note) -> None:
        self._note = note
        self._since: float | None = None

    def seen(self, error: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            self._note(f"lost touch with the database or Redis ({type(error).__name__}); "
                       "still waiting for the run")

    def over(self) -> None:
        if self._since is not None:
            self._note(f"reconnected after {time.monotonic() - self._since:.0f} s")
            self._since = None
