"""`sync --local` and the demo: a whole sync in this process, wired from a local runtime.

The run itself is sync/local.py's; this hands it what the caller's `LocalRuntime`
(runtime.py) provides and the alert calls (alert_hooks.py), as tasks.py does for the
workers with theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from trestle_tasks.store.sync_log import SyncRun
from trestle_tasks.sync.local import LocalAlerts, LocalRunResult, LocalServices, run_locally
from trestle_tasks.sync.model import RunPlan
from trestle_tasks.worker import alert_hooks
from trestle_tasks.worker.runtime import LocalRuntime


def local_services(runtime: LocalRuntime) -> LocalServices:
    """The store, run lock, clients and alert calls of a run in this process."""

    def after_run(run: SyncRun | None) -> object:
        return alert_hooks.after_run(runtime, run)

    def after_crash(resource: str, error: BaseException) -> object:
        return alert_hooks.after_crash(runtime, resource, error)

    return LocalServices(
        store=runtime.store,
        lock=runtime.run_lock(),
        new_client=runtime.trestle_client,
        check_credentials=lambda: runtime.token_provider().get_token(),
        alerts=LocalAlerts(after_crash=after_crash, after_run=after_run,
                           check=lambda: alert_hooks.check(runtime)),
    )


def sync_local(
    runtime: LocalRuntime,
    resources: Iterable[str],
    *,
    full: bool = False,
    concurrency: int = 2,
    on_plan: Callable[[RunPlan], None] | None = None,
    on_records: Callable[[int], None] | None = None,
) -> list[LocalRunResult]:
    return run_locally(runtime.settings, resources, local_services(runtime), full=full,
                       concurrency=concurrency, on_plan=on_plan, on_records=on_records)
