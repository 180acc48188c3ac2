"""Running a whole sync in this process, without Celery: `sync --local` and the demo.

The same use cases as the workers (plan, windows, finalize), with an in-process quota
limiter instead of Redis, and windows walked by a small thread pool. The run lock is the
workers' own, in the database, so a cron job and the cluster take turns.

What it runs with (store, lock, clients, the alert calls) is passed in as `LocalServices`:
trestle_tasks/cli/local.py builds them from the settings, as tasks.py does for the workers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass

from trestle_tasks.coordination.locks import LockGrant, LockKeeper, RunLock
from trestle_tasks.core.logs import log_context
from trestle_tasks.core.settings import Settings
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import SyncRun
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.interrupt import WalkStopped, sigint_deferred, stop_run
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.plan import Skipped, WindowSizing, new_run_id, plan_run, this_process
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.sync.window import media_since, sync_window
from trestle_tasks.trestle.client import TrestleClient


@dataclass(frozen=True)
class LocalRunResult:
    resource: str
    run: SyncRun | None
    skipped: Skipped | None = None


@dataclass(frozen=True)
class LocalAlerts:
    """The alert calls a local run makes at its boundaries, passed in by the caller (the
    alert hooks sit above sync). Each must swallow its own faults."""

    after_crash: Callable[[str, BaseException], object]  # resource, error
    after_run: Callable[[SyncRun | None], object]
    check: Callable[[], object]  # the periodic check: local runs have no beat


@dataclass(frozen=True)
class LocalServices:
    """What a local run works with, built by the caller from the settings."""

    store: Store
    lock: RunLock
    new_client: Callable[[], TrestleClient]  # a fresh client: its request count its own
    check_credentials: Callable[[], object]  # gets (and caches) a token, or raises
    alerts: LocalAlerts


def run_locally(
    settings: Settings,
    resources: Iterable[str],
    services: LocalServices,
    *,
    full: bool = False,
    concurrency: int = 2,
    on_plan: Callable[[RunPlan], None] | None = None,
    on_records: Callable[[int], None] | None = None,
) -> list[LocalRunResult]:
    client = services.new_client()
    alerts = services.alerts
    resources = list(resources)
    run_ids = [new_run_id() for _ in resources]
    if resources:
        # Logged as the first run's start: it is what that run waits for.
        with log_context(run_id=run_ids[0], resource=resources[0]):
            _prepare_every_table(services, client, resources)
    results = []
    for resource, run_id in zip(resources, run_ids, strict=True):
        with log_context(run_id=run_id, resource=resource):
            try:
                # Credentials first: the run lock writes to the database, and a wrong secret
                # must leave it untouched. The token is cached for the run that follows.
                services.check_credentials()
                result = _sync_resource(settings, resource, run_id, services, client, full,
                                        concurrency, on_plan, on_records)
            except Exception as error:
                alerts.after_crash(resource, error)
                raise
            alerts.after_run(result.run)
            results.append(result)
    # Local runs have no beat: the periodic check (staleness, stuck locks) rides on each sync.
    alerts.check()
    return results


def _prepare_every_table(services: LocalServices, client: TrestleClient,
                         resources: list[str]) -> None:
    """Before the first run: every resource's table, from one `$metadata` read for all, so
    a resource the feed does not declare stops the command before anything synced, not
    after the resources listed before it. Credentials first, as for each run."""
    try:
        services.check_credentials()
        ensure_tables(services.store, client, resources)
    except Exception as error:
        services.alerts.after_crash(resources[0] if resources else "", error)
        raise


# A run held by this process renews its lease every third of it, so a short one costs
# little; and a cron job killed mid-run (SIGKILL, OOM) frees its resource within a minute
# instead of a whole SYNC_LOCK_TTL: nothing else would release it.
IN_PROCESS_LEASE_S = 60.0


def in_process_lease(settings: Settings) -> float:
    return min(settings.lock_ttl_s, IN_PROCESS_LEASE_S)


def _sync_resource(
    settings: Settings,
    resource: str,
    run_id: str,
    services: LocalServices,
    client: TrestleClient,
    full: bool,
    concurrency: int,
    on_plan: Callable[[RunPlan], None] | None,
    on_records: Callable[[int], None] | None,
) -> LocalRunResult:
    store, lock = services.store, services.lock
    try:
        planned = plan_run(
            resource, store=store, client=client, lock=lock, planner=this_process("sync --local"),
            lock_ttl_s=in_process_lease(settings), full=full,
            sizing=WindowSizing.for_cluster(slots=max(1, concurrency),
                                            page_size=settings.page_size,
                                            max_records=settings.window_size,
                                            lanes=settings.window_lanes),
            settle_s=settings.settle_s,
            run_id=run_id, prepare=lambda: ensure_tables(store, client, [resource]),
            defer_indexes=settings.defer_indexes,
        )
    except KeyboardInterrupt:
        # Planning releases the lock it took; its row, if written, is closed here.
        raise stop_run(store, lock, resource=resource, run_id=run_id, grant=None) from None
    if isinstance(planned, Skipped):
        return LocalRunResult(resource, None, planned)
    grant = LockGrant(planned.lock_name, planned.lock_owner, planned.fence)
    stopped = None
    try:
        if on_plan is not None:
            on_plan(planned)
        outcomes = _walk_windows(settings, planned, services, grant, concurrency, on_records)
        # Finalize moves the watermark, then closes the row: a Ctrl-C waits for its end
        # (a few statements), so a run closed `interrupted` never moved its watermark.
        with sigint_deferred():
            run = finalize_run(planned, outcomes, store=store, lock=lock)
        return LocalRunResult(resource, run)
    except KeyboardInterrupt:
        stopped = stop_run(store, lock, resource=resource, run_id=run_id, grant=grant)
        raise stopped from None
    finally:
        # Finalize released it already; after a crash the next cron run must not wait out
        # the lease (this process has no reaper). After a Ctrl-C, stop_run released it.
        if stopped is None:
            lock.release(grant)


# After a Ctrl-C, how long the window threads get to notice it (at their next page) and
# record their windows failed, before the run's row is closed without them.
STOP_WAIT_S = 10.0


def _walk_windows(settings: Settings, planned: RunPlan, services: LocalServices,
                  grant: LockGrant, concurrency: int,
                  on_records: Callable[[int], None] | None) -> list[WindowOutcome]:
    store, lock = services.store, services.lock
    photos_since = media_since(planned, settings.resources, store)
    # A Ctrl-C reaches the main thread only: the windows see it through this event, at
    # their next page, and end failed (WalkStopped), never recorded as succeeded.
    stop = threading.Event()

    def on_page(records: int) -> None:
        if stop.is_set():
            raise WalkStopped
        if on_records is not None:
            on_records(records)

    def walk(window: Window) -> WindowOutcome:
        if stop.is_set():  # handed to a thread after the Ctrl-C: not started at all
            raise WalkStopped
        # A client per window: its request count is that window's own.
        return sync_window(planned, window, store=store, client=services.new_client(),
                           page_size=settings.page_size, on_page=on_page,
                           media_since=photos_since,
                           replication_min=settings.replication_min_records)

    # The lease lapses unless renewed: a long local run renews it as the workers' windows
    # do, and finalize notices if it was lost all the same.
    with LockKeeper(lock, grant, in_process_lease(settings)):
        pool = ThreadPoolExecutor(max(1, concurrency))
        walks: list[Future[WindowOutcome]] = []
        interrupted = False
        try:
            walks = [pool.submit(walk, window) for window in planned.windows]
            return [done.result() for done in walks]
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            # Windows not started never start; those under way end at their next page,
            # waited for a while so that their rows are closed before the run's.
            pool.shutdown(wait=False, cancel_futures=True)
            # (A cancelled future never counts as done for `wait`: only the others.)
            wait_for([w for w in walks if not w.cancelled()], timeout=STOP_WAIT_S)
            raise
        except BaseException:
            for pending in walks:  # as `pool.map` did: windows not started are dropped
                pending.cancel()
            raise
        finally:
            pool.shutdown(wait=not interrupted)
