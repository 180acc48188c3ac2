"""Gathering what the periodic alert rules read: the sync log and the run locks."""

from __future__ import annotations

from collections.abc import Iterable

from trestle_tasks.coordination.locks import RunLock, lock_name
from trestle_tasks.monitoring.alerts.rules import HeldLock, ResourceHistory
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log_reports import first_runs_and_last_syncs


def resource_history(store: Store, resources: Iterable[str]) -> list[ResourceHistory]:
    """First trigger and last successful sync of each resource (a reconcile's success says
    nothing about freshness, so only sync runs count)."""
    wanted = list(resources)
    firsts, successes = first_runs_and_last_syncs(store, wanted)
    return [ResourceHistory(r, firsts.get(r), successes.get(r)) for r in wanted]


def held_locks(store: Store, lock: RunLock, credential: str,
               resources: Iterable[str]) -> list[HeldLock]:
    """Each held run lock with the start of the run holding it (from the sync log)."""
    held = []
    for resource in resources:
        holder = lock.holder(lock_name(resource))
        if holder is None:
            continue
        run = store.sync_log.get_run(holder.owner, resource)
        if run is not None:
            held.append(HeldLock(resource, holder.owner, run.started_at))
    return held
