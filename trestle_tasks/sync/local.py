"""Running a whole sync in this process, without Celery: `sync --local` and the demo.

The same use cases as the workers (plan, windows, finalize), with an in-process quota
limiter and file locks instead of Redis, and windows walked by a small thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from trestle_tasks import factory
from trestle_tasks.settings import Settings
from trestle_tasks.store.journal import SyncRun
from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.model import RunPlan
from trestle_tasks.sync.plan import Skipped, plan_run
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.sync.window import sync_window


@dataclass(frozen=True)
class LocalRunResult:
    resource: str
    run: SyncRun | None
    skipped: Skipped | None = None


def sync_local(
    settings: Settings,
    resources: Iterable[str],
    *,
    full: bool = False,
    concurrency: int = 2,
    on_plan: Callable[[RunPlan], None] | None = None,
    on_records: Callable[[int], None] | None = None,
) -> list[LocalRunResult]:
    store = factory.store(settings)
    client = factory.trestle_client(settings, shared=False)
    lock = factory.run_lock(settings, shared=False)
    results = []
    for resource in resources:
        planned = plan_run(
            resource, store=store, client=client, lock=lock,
            credential=factory.credential_id(settings), owner="local",
            lock_ttl_s=settings.lock_ttl_s, target_window=settings.window_size, full=full,
            prepare=lambda resource=resource: ensure_tables(store, client, [resource]),
        )
        if isinstance(planned, Skipped):
            results.append(LocalRunResult(resource, None, planned))
            continue
        if on_plan is not None:
            on_plan(planned)
        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            outcomes = list(pool.map(
                # A client per window: its request count is that window's own.
                lambda window, plan=planned: sync_window(
                    plan, window, store=store,
                    client=factory.trestle_client(settings, shared=False),
                    page_size=settings.page_size, on_page=on_records),
                planned.windows,
            ))
        run = finalize_run(planned, outcomes, store=store, lock=lock)
        results.append(LocalRunResult(resource, run))
    return results
