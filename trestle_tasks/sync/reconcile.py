"""Finding records that left the feed: a key census compared with the database.

Trestle never announces a deletion; a record just stops appearing. The census takes every
key with key-only queries (up to 300,000 a page), and only a census that finished is
compared: one that failed part way changes nothing, because a missing page would look like
a mass deletion. A census that would delete more than `max_delete_fraction` of the stored
records is refused too (a subscription change looks the same); records that came back are
restored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from trestle_tasks.coordination.locks import RunLock
from trestle_tasks.errors import FatalError
from trestle_tasks.logs import log_context
from trestle_tasks.store.journal import FAILED, SUCCEEDED, SyncRun
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.store import Store
from trestle_tasks.sync.phases import Phase
from trestle_tasks.sync.plan import Skipped, lock_name, new_run_id, record_skip
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import census_keys

log = logging.getLogger(__name__)
DEFAULT_MAX_DELETE_FRACTION = 0.5


class CensusRefusedError(FatalError):
    """The census looks like partial information; nothing was marked deleted."""


@dataclass(frozen=True)
class ReconcileOutcome:
    census: int
    stored: int
    deleted: int
    restored: int


def reconcile(
    resource: str,
    *,
    store: Store,
    client: TrestleClient,
    lock: RunLock,
    credential: str,
    lock_ttl_s: float,
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION,
    run_id: str | None = None,
) -> SyncRun | Skipped:
    """Census, compare, soft-delete and restore, under the resource's run lock.

    The sync lock is shared on purpose: a record loaded after the census began would
    otherwise look deleted.
    """
    run_id = run_id or new_run_id()
    # Every line of the census (pager, client, store) carries the run id.
    with log_context(run_id=run_id, resource=resource):
        return _reconcile(resource, store=store, client=client, lock=lock,
                          credential=credential, lock_ttl_s=lock_ttl_s,
                          max_delete_fraction=max_delete_fraction, run_id=run_id)


def _reconcile(resource: str, *, store: Store, client: TrestleClient, lock: RunLock,
               credential: str, lock_ttl_s: float, max_delete_fraction: float,
               run_id: str) -> SyncRun | Skipped:
    grant = lock.acquire(lock_name(credential, resource), owner=run_id, ttl_s=lock_ttl_s)
    if grant is None:
        return record_skip(store, Skipped(
            resource, f"{resource} is busy with another run; reconcile later", run_id))
    context = {"run_id": run_id, "resource": resource}
    phase = Phase(log, "reconcile", stats=client.stats, context=context).start(
        "reconcile run %s: taking a key census", run_id)
    try:
        store.journal.open_run(run_id, resource, details={"kind": "reconcile"})
        try:
            key_field = layout_of(store.engine, resource, store.schema).key_field.name
            census: set[str] = set()
            for keys in census_keys(client, resource, key_field):
                census.update(keys)
                lock.renew(grant, lock_ttl_s)
            stored = set(store.stored_keys(resource))
            gone = stored - census
            if stored and len(gone) > max_delete_fraction * len(stored):
                raise CensusRefusedError(
                    f"the census found {len(census):,} keys but {len(gone):,} of "
                    f"{len(stored):,} stored records are missing from it (more than "
                    f"{max_delete_fraction:.0%}): refusing to mark them deleted; check the "
                    "subscription, or raise --max-delete-fraction"
                )
            restored = store.restore_deleted(
                resource, sorted(census.intersection(store.deleted_keys(resource)))
            )
            deleted = store.mark_deleted(resource, sorted(gone), run_id=run_id)
        except Exception as error:
            figures = phase.figures()
            store.journal.add_counts(run_id, resource, api_requests=figures.requests,
                                     retries=figures.retries,
                                     rate_limited=figures.rate_limited,
                                     bytes_received=figures.bytes_received)
            store.journal.close_run(run_id, resource, status=FAILED, error=str(error),
                                    details={"kind": "reconcile"})
            phase.end("reconcile run %s failed: %s", run_id, error, figures=figures,
                      outcome=FAILED)
            raise
        outcome = ReconcileOutcome(len(census), len(stored), deleted, restored)
        figures = phase.figures(len(census))
        store.journal.add_counts(run_id, resource, api_requests=figures.requests,
                                 retries=figures.retries, rate_limited=figures.rate_limited,
                                 bytes_received=figures.bytes_received)
        run = store.journal.close_run(run_id, resource, status=SUCCEEDED, details={
            "kind": "reconcile", "census": outcome.census, "stored": outcome.stored,
            "deleted": outcome.deleted, "restored": outcome.restored,
        })
        phase.end("reconcile run %s: %d keys in the feed, %d marked deleted, %d restored",
                  run_id, outcome.census, deleted, restored, figures=figures,
                  deleted=deleted, restored=restored)
        return run if run is not None else store.journal.get_run(run_id, resource)  # type: ignore[return-value]
    finally:
        lock.release(grant)
