"""Sending a run to the Celery workers and waiting for it, for `trestle-etl sync` and the
Celery demo: the Celery layer's job, beside tasks.py, not a use case of sync/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from trestle_tasks.core.errors import FatalError, is_retriable
from trestle_tasks.sync.model import new_run_id

if TYPE_CHECKING:
    from trestle_tasks.coordination.locks import RunLock
    from trestle_tasks.store.store import Store
    from trestle_tasks.store.sync_log import SyncRun

# The plan task's registered name (tasks.py): sent by name, see dispatch().
PLAN_SYNC_TASK = "trestle.plan_sync"


@dataclass(frozen=True)
class Dispatched:
    run_id: str
    task_ids: dict[str, str]  # resource -> plan_sync task id
    full: bool = False
    feed: str = "default"


def dispatch(resources: Iterable[str], *, full: bool, feed: str = "default") -> Dispatched:
    run_id = new_run_id()
    task_ids = {resource: send_plan(resource, run_id, full=full, feed=feed)
                for resource in resources}
    return Dispatched(run_id, task_ids, full=full, feed=feed)


def send_plan(resource: str, run_id: str, *, full: bool, feed: str) -> str:
    """Send the run's plan task; its task id. Safe to send again: planning is idempotent
    on the run id (tasks.plan_sync)."""
    # Sent by name through the bare Celery app (its routes still apply): importing the
    # tasks module (the store, SQLAlchemy, the sync code) costs about half a second that
    # `sync --wait` would otherwise spend before the run even starts.
    from trestle_tasks.worker.celery_app import app

    # The default feed's message is what it always was (an older worker reads it).
    kwargs: dict[str, Any] = {"full": full, "run_id": run_id,
                              **({} if feed == "default" else {"feed": feed})}
    return str(app.send_task(PLAN_SYNC_TASK, args=(resource,), kwargs=kwargs).id)


@dataclass(frozen=True)
class Finished:
    resource: str
    run: SyncRun | None
    skipped_reason: str | None = None
    label: str | None = None  # the feed, when several are followed at once
    # Why `sync --wait` stopped following a run that had not closed (nobody will).
    orphaned: str | None = None
    # Why the run was never planned (its plan task failed): the others are still followed.
    failed: str | None = None


@dataclass(frozen=True)
class _Attempt:
    """The run attempt being followed for one resource (a whole-run retry is a new one)."""

    run_id: str
    task_id: str | None


class Liveness(Protocol):
    """What tells a run that will finish from one that cannot: the workers and the
    watchdog announce themselves in Redis, a run's process renews its lease."""

    def workers_alive(self) -> bool: ...

    def watchdog_alive(self) -> bool: ...

    def lock_owner(self, resource: str) -> str | None: ...


class ClusterLiveness:
    """`Liveness` from the cluster's Redis and the run lock in the database."""

    def __init__(self, redis: Any, lock: RunLock) -> None:
        self._redis, self._lock = redis, lock

    def workers_alive(self) -> bool:
        from trestle_tasks.coordination.worker_slots import live_slots

        return live_slots(self._redis) > 0

    def watchdog_alive(self) -> bool:
        from trestle_tasks.coordination.presence import watchdog_alive

        return watchdog_alive(self._redis)

    def lock_owner(self, resource: str) -> str | None:
        from trestle_tasks.coordination.locks import lock_name

        holder = self._lock.holder(lock_name(resource))
        return holder.owner if holder is not None else None


@dataclass(frozen=True)
class Followed:
    """One feed's dispatched runs, where to read them and how to tell they can finish."""

    dispatched: Dispatched
    store: Store
    label: str | None = None
    liveness: Liveness | None = None


Note = Callable[[str], None]

# With no worker announced, `sync --wait` says so at once and stops after this long (the
# runs stay queued and start when a worker does). Longer than two of the workers'
# announcements (every 20 s, worker_slots.REFRESH_S): a Redis restarted empty has them
# all back by then.
NO_WORKER_GRACE_S = 45.0
# An open run whose lease nobody renews, with no watchdog to re-plan or close it, is
# reported as orphaned after this long (a lease between two renewals is not orphaned).
ORPHAN_GRACE_S = 20.0
# A plan no worker has started after this long is sent again: its message may have gone
# with a killed worker (Redis returns it only after hours). A duplicate is harmless.
PLAN_RESEND_S = 120.0
_LIVENESS_EVERY_S = 2.0
_RETRIES_EVERY_S = 5.0


def wait(dispatched: Dispatched, store: Store, *, timeout_s: float, poll_s: float = 0.5,
         closing_poll_s: float = 0.1, on_progress: Callable[[int, int], None] | None = None,
         on_note: Note | None = None, liveness: Liveness | None = None,
         on_finished: Callable[[Finished], None] | None = None) -> list[Finished]:
    """`wait_all` for one feed."""
    return wait_all([Followed(dispatched, store, liveness=liveness)], timeout_s=timeout_s,
                    poll_s=poll_s, closing_poll_s=closing_poll_s, on_progress=on_progress,
                    on_note=on_note, on_finished=on_finished)


def wait_all(
    followed: Sequence[Followed],
    *,
    timeout_s: float,
    poll_s: float = 0.5,  # one indexed read per resource: the end is told within 0.5 s
    closing_poll_s: float = 0.1,
    on_progress: Callable[[int, int], None] | None = None,
    on_note: Note | None = None,
    on_finished: Callable[[Finished], None] | None = None,
) -> list[Finished]:
    """Follow every feed's runs to their true end, as the sync log tells it, side by side:
    each resource is reported (`on_finished`) as it ends, whatever the others do.

    A run retried as a whole is followed into its next attempt (`on_note` says when that
    is due); a database or Redis that stops answering for a while (a restart) is waited
    out, not taken for the end of the run. A run that cannot finish is not waited on: with
    no worker alive `sync --wait` stops after NO_WORKER_GRACE_S, and an open run whose
    lease nobody renews, with no watchdog to replace its process, is reported orphaned.
    A run the watchdog re-plans keeps its run id: it is simply followed on.

    Once every record the runs expected has been fetched, only loading the last pages and
    finalizing are left: the sync log is then read every `closing_poll_s`, so a short run
    is not reported up to `poll_s` after it closed.
    """
    deadline = time.monotonic() + timeout_s
    note = on_note or (lambda _text: None)
    tracks = [_Track(f) for f in followed]
    outage = _Outage(note)
    while True:
        fetched = expected = 0
        for track in tracks:
            try:
                done, expecting = track.look(note, time.monotonic() > deadline)
            except Exception as error:
                if not is_retriable(error):
                    raise
                outage.seen(error)
                continue
            outage.over()
            fetched, expected = fetched + done, expected + expecting
            for ended in track.newly_finished():
                if on_finished is not None:
                    on_finished(ended)
        if on_progress is not None:
            on_progress(fetched, expected)
        if all(track.done for track in tracks):
            return [ended for track in tracks for ended in track.in_order()]
        if time.monotonic() > deadline:
            waiting = "; ".join(w for track in tracks for w in track.waiting())
            raise FatalError(f"still not finished after {timeout_s:.0f} s: {waiting}; see "
                             "`trestle-etl status`")
        time.sleep(closing_poll_s if 0 < expected <= fetched else poll_s)


class _Track:
    """One feed's resources being followed."""

    def __init__(self, followed: Followed) -> None:
        self.followed = followed
        self.sync_log = _SyncLog(followed.store)
        self.following = {r: _Attempt(followed.dispatched.run_id, t)
                          for r, t in followed.dispatched.task_ids.items()}
        self.finished: dict[str, Finished] = {}
        self._reported: set[str] = set()
        self._runs: dict[str, SyncRun] = {}
        self._orphan_since: dict[str, float] = {}
        self._no_worker_since: float | None = None
        self._retries_read_at: dict[str, float] = {}
        self._plan_sent_at: dict[str, float] = {}
        self._told: set[tuple[str, str, int]] = set()
        self._checked_at = -_LIVENESS_EVERY_S

    @property
    def done(self) -> bool:
        return all(r in self.finished for r in self.following)

    def in_order(self) -> list[Finished]:
        return [self.finished[r] for r in self.followed.dispatched.task_ids]

    def newly_finished(self) -> list[Finished]:
        fresh = [f for r, f in self.finished.items() if r not in self._reported]
        self._reported.update(f.resource for f in fresh)
        return fresh

    def waiting(self) -> list[str]:
        label = f"{self.followed.label}/" if self.followed.label else ""
        texts = []
        for resource, attempt in self.following.items():
            if resource in self.finished:
                continue
            run = self._runs.get(resource)
            state = (f"{run.status}, {run.records_fetched:,} records fetched"
                     if run is not None else "not started yet")
            texts.append(f"{label}{resource} (run {attempt.run_id}: {state})")
        return texts

    def look(self, note: Note, planning_overdue: bool) -> tuple[int, int]:
        """Read every unfinished resource's run; (records fetched, records expected)."""
        from trestle_tasks.store.sync_log import OPEN_STATUSES

        fetched = expected = 0
        for resource, attempt in self.following.items():
            if resource in self.finished:
                continue
            run = _look(self.sync_log, resource, attempt, planning_overdue=planning_overdue)
            if run is None:  # not planned yet
                self._resend_if_lost(resource, attempt, note)
                continue
            if isinstance(run, Finished):
                self._finish(run)
                continue
            self._runs[resource] = run
            if run.status in OPEN_STATUSES:
                fetched += run.records_fetched
                expected += int((run.details or {}).get("expected_records", 0))
                self._tell_retries(run, note)
            elif (retry := (run.details or {}).get("retry")) is not None:
                note(self._named(_retry_note(run, retry)))
                self.following[resource] = _Attempt(retry["run_id"], retry.get("task_id"))
            else:
                self._finish(Finished(resource, run))
        self._check_liveness(note)
        return fetched, expected

    def _resend_if_lost(self, resource: str, attempt: _Attempt, note: Note) -> None:
        now = time.monotonic()
        sent_at = self._plan_sent_at.setdefault(resource, now)
        if now - sent_at < PLAN_RESEND_S or self.followed.liveness is None:
            return
        self._plan_sent_at[resource] = now
        dispatched = self.followed.dispatched
        send_plan(resource, attempt.run_id, full=dispatched.full, feed=dispatched.feed)
        note(self._named(f"{resource}: no worker started planning run {attempt.run_id} "
                         f"within {PLAN_RESEND_S:.0f} s (workers busy, or its message went "
                         "with a killed worker): sent again"))

    def _tell_retries(self, run: SyncRun, note: Note) -> None:
        """Say once per attempt which window failed transiently and when it is retried:
        the workers' retries are otherwise silent here."""
        now = time.monotonic()
        if "plan" not in (run.details or {}) or \
                now - self._retries_read_at.get(run.resource, -_RETRIES_EVERY_S) \
                < _RETRIES_EVERY_S:
            return
        self._retries_read_at[run.resource] = now
        from trestle_tasks.sync.ledger import WindowLedger

        store = self.followed.store
        ledger = WindowLedger(store.engine, schema=store.schema)
        for window_id, retries, not_before, error in ledger.retrying(run.run_id,
                                                                      run.resource):
            if (run.run_id, window_id, retries) in self._told:
                continue
            self._told.add((run.run_id, window_id, retries))
            when = not_before.astimezone(UTC).strftime("%H:%M:%S UTC")
            note(self._named(f"{run.resource}: window {window_id} failed transiently "
                             f"({error[:160] or 'no reason recorded'}); retried at {when} "
                             f"(retry {retries})"))

    def _finish(self, ended: Finished) -> None:
        self.finished[ended.resource] = replace(ended, label=self.followed.label)

    def _named(self, text: str) -> str:
        return f"feed {self.followed.label}: {text}" if self.followed.label else text

    def _check_liveness(self, note: Note) -> None:
        """Stop following what cannot finish (read every couple of seconds: Redis and the
        lock table, not the sync log)."""
        liveness = self.followed.liveness
        now = time.monotonic()
        if liveness is None or self.done or now - self._checked_at < _LIVENESS_EVERY_S:
            return
        self._checked_at = now
        try:
            workers = liveness.workers_alive()
            open_runs = {r: run for r, run in self._runs.items()
                         if r not in self.finished and run.status in _open_statuses()}
            owners = {r: liveness.lock_owner(r) for r in open_runs}
            watchdog = liveness.watchdog_alive() if open_runs else True
        except Exception as error:  # Redis or the database away a moment: look again later
            if not is_retriable(error):
                raise
            return
        if workers:
            self._no_worker_since = None
        elif self._no_worker_since is None:
            self._no_worker_since = now
            note(self._named("no worker is running (none has announced itself in Redis); "
                             f"waiting up to {NO_WORKER_GRACE_S:.0f} s for one"))
        elif now - self._no_worker_since > NO_WORKER_GRACE_S:
            raise FatalError(self._named(
                f"no worker is running: none announced itself for {NO_WORKER_GRACE_S:.0f} s; "
                "start one (`celery -A trestle_tasks worker`): the runs stay queued and "
                "start then; `trestle-etl status` follows them"))
        for resource, run in open_runs.items():
            if owners[resource] == run.run_id or watchdog:
                # Alive, or the watchdog will replace its process (same run id) or close it.
                self._orphan_since.pop(resource, None)
                continue
            since = self._orphan_since.setdefault(resource, now)
            if now - since > ORPHAN_GRACE_S:
                who = (run.details or {}).get("planner") or "its process"
                self._finish(Finished(resource, run, orphaned=(
                    f"run {run.run_id} is orphaned: {who} stopped renewing its lease while "
                    f"it was {run.status}, and no watchdog is running to take it over "
                    "(start `celery -A trestle_tasks beat`)")))


def _open_statuses() -> tuple[str, ...]:
    from trestle_tasks.store.sync_log import OPEN_STATUSES

    return OPEN_STATUSES


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
    if answer is not None and answer.get("status") == "failed":
        return Finished(resource, None, failed=str(answer.get("reason")))
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
        if not self._exists:
            self._exists = self._store.has_sync_log()
        return self._store.sync_log.get_run(run_id, resource) if self._exists else None


def _plan_state(resource: str, task_id: str) -> dict[str, Any] | None:
    """The plan_sync task's return value once it succeeded (None before that), read from
    the result backend by polling: no subscription is left open when the command exits."""
    from trestle_tasks.worker.celery_app import app

    meta = app.backend.get_task_meta(task_id)
    state = meta.get("status")
    if state == "SUCCESS":
        return dict(meta.get("result") or {})
    if state in ("FAILURE", "REVOKED"):
        # One resource's outcome, not the end of the wait: the others go on.
        return {"status": "failed", "reason": f"planning the {resource} run failed: "
                                             f"{meta.get('result')}"}
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
