"""`sync --local` and the demo: a whole sync in this process, wired from the settings.

The run itself is sync/local.py's; this builds what it runs with from the settings
(factory) and hands it the alert calls (alert_hooks.py), as tasks.py does for the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from trestle_tasks import alert_hooks, factory
from trestle_tasks.settings import Settings
from trestle_tasks.store.journal import SyncRun
from trestle_tasks.sync.local import LocalAlerts, LocalRunResult, LocalServices, run_locally
from trestle_tasks.sync.model import RunPlan


def local_services(settings: Settings) -> LocalServices:
    """The store, run lock, clients and alert calls of a run in this process."""

    def after_run(run: SyncRun | None) -> object:
        return alert_hooks.after_run(settings, run, shared=False)

    def after_crash(resource: str, error: BaseException) -> object:
        return alert_hooks.after_crash(settings, resource, error, shared=False)

    return LocalServices(
        store=factory.store(settings),
        lock=factory.run_lock(settings),
        new_client=lambda: factory.trestle_client(settings, shared=False),
        check_credentials=lambda: factory.token_provider(settings, shared=False).get_token(),
        alerts=LocalAlerts(after_crash=after_crash, after_run=after_run,
                           check=lambda: alert_hooks.check(settings, shared=False)),
    )


def sync_local(
    settings: Settings,
    resources: Iterable[str],
    *,
    full: bool = False,
    concurrency: int = 2,
    on_plan: Callable[[RunPlan], None] | None = None,
    on_records: Callable[[int], None] | None = None,
) -> list[LocalRunResult]:
    return run_locally(settings, resources, local_services(settings), full=full,
                       concurrency=concurrency, on_plan=on_plan, on_records=on_records)
