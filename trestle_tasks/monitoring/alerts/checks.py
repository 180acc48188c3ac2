"""Gathering what the periodic alert rules read: the sync log and the run locks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from trestle_tasks.coordination.locks import RunLock, lock_name
from trestle_tasks.monitoring.alerts.rules import HeldLock, ResourceHistory
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import SUCCEEDED


def resource_history(store: Store, resources: Iterable[str]) -> list[ResourceHistory]:
    """First trigger and last successful sync of each resource.

    Only sync runs count as successes: they are the rows with a planned upper bound
    (`watermark_to`); a reconcile has none, and its success says nothing about freshness.
    """
    log = bookkeeping(store.schema)["etl_sync_log"]
    wanted = list(resources)
    last_success = (
        sa.select(log.c.resource, sa.func.max(log.c.finished_at))
        .where(log.c.resource.in_(wanted), log.c.status == SUCCEEDED,
               log.c.watermark_to.is_not(None))
        .group_by(log.c.resource)
    )
    first_run = (sa.select(log.c.resource, sa.func.min(log.c.started_at))
                 .where(log.c.resource.in_(wanted)).group_by(log.c.resource))
    with store.engine.connect() as conn:
        successes = {r: at for r, at in conn.execute(last_success)}
        firsts = {r: at for r, at in conn.execute(first_run)}
    # Aggregates skip the column type's result processing: normalize to aware UTC here.
    return [ResourceHistory(r, _utc(firsts.get(r)), _utc(successes.get(r))) for r in wanted]


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back aggregates of datetimes as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
