"""Making the store equal to the feed: a (key, timestamp) census, compared and repaired.

An incremental sync only ever sees records whose ModificationTimestamp moves past the
watermark. Records that arrive with old timestamps (made visible to the feed, an office
joining, a late commit), changes that arrive below the watermark, and deletions (never
announced) are found only by comparing the feed's census of (key, ModificationTimestamp)
pairs — 300,000 a request, see `trestle/pager.census_versions` — with the store:
missing, restored and stale records are fetched by key and upserted, gone ones are marked
deleted (see `sync/drift.py` for the four kinds).

Only a census that finished is compared: one that failed part way changes nothing,
because a missing page would look like a mass deletion. A census that would delete more
than `max_delete_fraction` of the stored records changes nothing either (a subscription
change looks the same). Every reconcile, dry runs included, records what it found and did
in the sync log (`details`: census, stored, missing, stale, gone, restored, fetched,
deleted, census_requests, repair_requests).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trestle_tasks.coordination.locks import LockKeeper, RunLock, lock_name
from trestle_tasks.core.errors import FatalError, StoreError
from trestle_tasks.core.logs import log_context
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import FAILED, INTERRUPTED, SUCCEEDED, SyncRun
from trestle_tasks.sync.census_spill import CensusSpill
from trestle_tasks.sync.drift import Drift
from trestle_tasks.sync.interrupt import sigint_shielded, stop_run
from trestle_tasks.sync.phases import Phase
from trestle_tasks.sync.plan import Skipped, new_run_id, record_skip
from trestle_tasks.sync.repair import Children, RepairOutcome, repair
from trestle_tasks.sync.repair_plan import (
    PageBoundaries,
    RepairPlan,
    keys_per_request,
    plan_repair,
)
from trestle_tasks.trestle.by_key import MAX_QUERY_CHARS
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import KEY_ONLY_TOP, census_versions

log = logging.getLogger(__name__)
DEFAULT_MAX_DELETE_FRACTION = 0.5
KIND = "reconcile"


class CensusRefusedError(FatalError):
    """The census looks like partial information; nothing was changed."""


@dataclass(frozen=True)
class ReconcileOptions:
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION
    dry_run: bool = False
    # Resources synced into this database: a repaired listing brings its Media and
    # OpenHouse rows only when those are kept here.
    synced_resources: Sequence[str] = ()
    census_page_size: int = KEY_ONLY_TOP


def reconcile(
    resource: str,
    *,
    store: Store,
    client: TrestleClient,
    lock: RunLock,
    lock_ttl_s: float,
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION,
    dry_run: bool = False,
    synced_resources: Sequence[str] = (),
    census_page_size: int = KEY_ONLY_TOP,
    run_id: str | None = None,
    on_census: Callable[[int], None] | None = None,
    on_repair: Callable[[int], None] | None = None,
) -> SyncRun | Skipped:
    """Census, compare, repair and soft-delete, under the resource's run lock.

    The sync lock is shared on purpose: a record loaded after the census began would
    otherwise look stale or deleted. `on_census` and `on_repair` get record counts as
    pages arrive (progress bars).
    """
    run_id = run_id or new_run_id()
    options = ReconcileOptions(max_delete_fraction, dry_run, tuple(synced_resources),
                               census_page_size)
    # Every line of the census (pager, client, store) carries the run id.
    with log_context(run_id=run_id, resource=resource):
        # Another feed's schema: its census would soft-delete the owner's records.
        store.check_owner()
        grant = lock.acquire(lock_name(resource), owner=run_id, ttl_s=lock_ttl_s)
        if grant is None:
            return record_skip(store, Skipped(
                resource, f"{resource} is busy with another run; reconcile later", run_id))
        stopped = None
        try:
            with LockKeeper(lock, grant, lock_ttl_s) as keeper:
                return _reconcile(resource, store=store, client=client, options=options,
                                  run_id=run_id, keeper=keeper, on_census=on_census,
                                  on_repair=on_repair)
        except KeyboardInterrupt:
            # A Ctrl-C (the census or the repair of `reconcile` on the command line): the
            # row closed `interrupted`, the lock released at once. What was repaired stays.
            stopped = stop_run(store, lock, resource=resource, run_id=run_id, grant=grant,
                               kind="reconcile")
            raise stopped from None
        finally:
            if stopped is None:
                lock.release(grant)


def take_census(client: TrestleClient, resource: str, key_field: str, spill: CensusSpill, *,
                page_size: int = KEY_ONLY_TOP,
                on_census: Callable[[int], None] | None = None) -> None:
    """Every record's key and ModificationTimestamp ticks into `spill` (complete, or
    raises): a page in memory at a time."""
    for versions in census_versions(client, resource, key_field, page_size=page_size):
        spill.add(versions)
        if on_census is not None:
            on_census(len(versions))
        del versions  # not held while the next page arrives


def _reconcile(resource: str, *, store: Store, client: TrestleClient,
               options: ReconcileOptions, run_id: str, keeper: LockKeeper,
               on_census: Callable[[int], None] | None,
               on_repair: Callable[[int], None] | None) -> SyncRun:
    context = {"run_id": run_id, "resource": resource}
    phase = Phase(log, KIND, stats=client.stats, context=context).start(
        "reconcile run %s: taking a (key, timestamp) census%s", run_id,
        " (dry run)" if options.dry_run else "", dry_run=options.dry_run)
    details: dict[str, Any] = {"kind": KIND, "dry_run": options.dry_run}
    store.sync_log.open_run(run_id, resource, details=details)
    try:
        key_field = layout_of(store.engine, resource, store.schema).key_field.name
        requests_before = client.stats.requests
        # The census on disk, compared there: memory stays flat at any feed size.
        with CensusSpill() as spill:
            take_census(client, resource, key_field, spill,
                        page_size=options.census_page_size, on_census=on_census)
            census_requests = client.stats.requests - requests_before
            drift = spill.compare(store.stored_versions(resource),
                                  store.rejected_versions(resource))
            wanted = spill.versions_of(drift.to_fetch)
            plan = (_plan(wanted, spill, key_field) if wanted and not options.dry_run
                    else RepairPlan())
        if drift.rejected:
            log.warning("%d record(s) of the feed already failed validation in their current "
                        "version (see etl_rejects); they are fetched again once they change",
                        len(drift.rejected))
        details.update(drift_figures(drift), census_requests=census_requests,
                       repair_requests=0, fetched=0, deleted=0)
        _refuse_mass_deletion(drift, options.max_delete_fraction)
        if not options.dry_run and (drift.to_fetch or drift.gone):
            # A census taken after the lock lapsed may miss what a sync loaded meanwhile:
            # its "gone" records could be live ones.
            keeper.ensure_held()
            details.update(_repair(resource, drift, wanted, plan, key_field=key_field,
                                   store=store, client=client, options=options,
                                   run_id=run_id, keeper=keeper, on_repair=on_repair))
            details["repair_requests"] = (client.stats.requests - requests_before
                                          - census_requests)
    except Exception as error:
        _close_failed(store, run_id, resource, phase, details, error)
        raise
    except KeyboardInterrupt:
        # The requests made so far are counted (usage, cost) before the caller closes the
        # row `interrupted` (stop_run); a Ctrl-C meanwhile does not cut this short.
        with sigint_shielded(), contextlib.suppress(Exception):
            figures = phase.figures()
            store.sync_log.add_counts(run_id, resource, api_requests=figures.requests,
                                     retries=figures.retries,
                                     rate_limited=figures.rate_limited,
                                     api_bytes=figures.api_bytes)
            phase.end("reconcile run %s interrupted by its operator", run_id,
                      figures=figures, outcome=INTERRUPTED)
        raise
    figures = phase.figures(details["census"])
    store.sync_log.add_counts(run_id, resource, api_requests=figures.requests,
                             retries=figures.retries, rate_limited=figures.rate_limited,
                             api_bytes=figures.api_bytes)
    run = store.sync_log.close_run(run_id, resource, status=SUCCEEDED, details=details)
    phase.end("reconcile run %s%s: %d in the feed, %d missing, %d stale, %d gone, "
              "%d restored; %d fetched, %d marked deleted", run_id,
              " (dry run)" if options.dry_run else "", details["census"],
              details["missing"], details["stale"], details["gone"], details["restored"],
              details["fetched"], details["deleted"], figures=figures,
              **{k: details[k] for k in ("missing", "stale", "gone", "restored", "fetched",
                                         "deleted")})
    if run is None:  # close_run read the row back: only a row deleted meanwhile is missing
        raise StoreError(f"reconcile run {run_id}: its sync log row for {resource} is gone")
    return run


def drift_figures(drift: Drift) -> dict[str, int]:
    """The sync-log figures of a comparison. `missing` counts records stored as deleted
    too (they are missing from the live copy); `restored` says how many of them."""
    return {"census": drift.census, "stored": drift.stored,
            "missing": len(drift.missing) + len(drift.restored),
            "stale": len(drift.stale), "gone": len(drift.gone),
            "restored": len(drift.restored), "newer_in_store": drift.newer_in_store,
            "rejected_before": len(drift.rejected)}


def _refuse_mass_deletion(drift: Drift, max_delete_fraction: float) -> None:
    if drift.stored and len(drift.gone) > max_delete_fraction * drift.stored:
        raise CensusRefusedError(
            f"the census found {drift.census:,} records but {len(drift.gone):,} of "
            f"{drift.stored:,} stored records are missing from it (more than "
            f"{max_delete_fraction:.0%}): refusing to change anything; check the "
            "subscription, or raise --max-delete-fraction"
        )


def _plan(wanted: list[tuple[Any, int | None]], spill: CensusSpill,
          key_field: str) -> RepairPlan:
    """How to fetch what is wanted. Of the census, the plan reads each page's first and
    last timestamp (16 bytes a 1,000 records) and counts of the stretches it would walk:
    never every record's timestamp."""
    timeline = PageBoundaries(spill.sorted_ticks(), spill.count_between)
    return plan_repair(wanted, timeline, keys_per_request=keys_per_request(
        key_field, [k for k, _ in wanted], MAX_QUERY_CHARS))


def _repair(resource: str, drift: Drift, wanted: list[tuple[Any, int | None]],
            plan: RepairPlan, *, key_field: str, store: Store,
            client: TrestleClient, options: ReconcileOptions, run_id: str,
            keeper: LockKeeper, on_repair: Callable[[int], None] | None) -> dict[str, Any]:
    outcome = RepairOutcome()
    if wanted:
        outcome = repair(resource, plan, key_field=key_field, store=store, client=client,
                         run_id=run_id,
                         children=Children.of(resource, options.synced_resources, store),
                         on_records=on_repair)
    keeper.ensure_held()  # the repair's fetches can outlast a lease
    # A record back in the feed with a version older than its deleted copy is not
    # rewritten by the guarded upsert; it is live again all the same.
    store.restore_deleted(resource, [k for k in drift.restored if k in outcome.received_keys])
    deleted = store.mark_deleted(resource, drift.gone, run_id=run_id)
    vanished = outcome.vanished([k for k, _ in wanted])
    if vanished:
        log.info("%d record(s) left the feed between the census and the repair; the next "
                 "reconcile marks them deleted", vanished)
    return {"fetched": outcome.fetched, "range_walks": len(plan.ranges),
            "fetched_by_key": len(plan.by_key), "upserted": outcome.upserted,
            "rejected": outcome.rejected, "vanished": vanished, "deleted": deleted,
            "media_fetched": outcome.media.fetched, "media_removed": outcome.media.removed,
            "media_incomplete": outcome.media.incomplete,
            "open_houses_fetched": outcome.open_houses_fetched,
            "open_houses_removed": outcome.open_houses_removed}


def _close_failed(store: Store, run_id: str, resource: str, phase: Phase,
                  details: dict[str, Any], error: Exception) -> None:
    figures = phase.figures()
    store.sync_log.add_counts(run_id, resource, api_requests=figures.requests,
                             retries=figures.retries, rate_limited=figures.rate_limited,
                             api_bytes=figures.api_bytes)
    store.sync_log.close_run(run_id, resource, status=FAILED, error=str(error),
                            details=details)
    phase.end("reconcile run %s failed: %s", run_id, error, figures=figures, outcome=FAILED)
