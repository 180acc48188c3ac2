"""Sending a run to the Celery workers and waiting for it, for `trestle-etl sync`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from trestle_tasks.errors import FatalError
from trestle_tasks.store.journal import RUNNING, SyncRun
from trestle_tasks.store.store import Store
from trestle_tasks.sync.plan import new_run_id


@dataclass(frozen=True)
class Dispatched:
    run_id: str
    task_ids: dict[str, str]  # resource -> plan_sync task id


def dispatch(resources: Iterable[str], *, full: bool) -> Dispatched:
    from trestle_tasks.tasks import plan_sync

    run_id = new_run_id()
    task_ids = {}
    for resource in resources:
        result = plan_sync.apply_async(args=(resource,), kwargs={"full": full, "run_id": run_id})
        task_ids[resource] = result.id
    return Dispatched(run_id, task_ids)


@dataclass(frozen=True)
class Finished:
    resource: str
    run: SyncRun | None
    skipped_reason: str | None = None


def wait(
    dispatched: Dispatched,
    store: Store,
    *,
    timeout_s: float,
    poll_s: float = 1.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Finished]:
    """Wait for every resource's plan, then for its run to close in the sync log."""
    deadline = time.monotonic() + timeout_s
    planned: dict[str, str] = {}
    finished: dict[str, Finished] = {}
    for resource, task_id in dispatched.task_ids.items():
        answer = _plan_answer(resource, task_id, deadline, poll_s)
        if answer.get("status") == "skipped":
            finished[resource] = Finished(resource, None, answer.get("reason"))
        else:
            planned[resource] = answer["run_id"]
    while True:
        fetched = expected = 0
        for resource, run_id in planned.items():
            if resource in finished:
                continue
            run = store.journal.get_run(run_id, resource)
            if run is not None and run.status != RUNNING:
                finished[resource] = Finished(resource, run)
            elif run is not None:
                fetched += run.records_fetched + sum(w.records_fetched for w in
                                                     store.journal.windows(run_id, resource))
                expected += int((run.details or {}).get("expected_records", 0))
        if on_progress is not None:
            on_progress(fetched, expected)
        if all(resource in finished for resource in dispatched.task_ids):
            return [finished[r] for r in dispatched.task_ids]
        if time.monotonic() > deadline:
            waiting = ", ".join(r for r in dispatched.task_ids if r not in finished)
            raise FatalError(f"run {dispatched.run_id} still running after {timeout_s:.0f} s "
                             f"({waiting}); see `trestle-etl status`")
        time.sleep(poll_s)


def _plan_answer(resource: str, task_id: str, deadline: float, poll_s: float) -> dict:
    """The plan_sync task's return value, read from the result backend by polling.

    Polling the stored result (rather than AsyncResult.get) keeps no subscription open
    that would complain when the command exits.
    """
    from trestle_tasks.celery_app import app

    while True:
        meta = app.backend.get_task_meta(task_id)
        state = meta.get("status")
        if state == "SUCCESS":
            return dict(meta.get("result") or {})
        if state in ("FAILURE", "REVOKED"):
            raise FatalError(f"planning the {resource} run failed: {meta.get('result')}")
        if time.monotonic() > deadline:
            raise FatalError(
                f"no worker planned the {resource} run in time: is a worker running "
                "(`celery -A trestle_tasks worker`)?"
            )
        time.sleep(poll_s)
