"""Syncing one window: walk it in keyset order and upsert page by page.

Streaming: one page is in memory at a time, whatever the window's size. Idempotent: a
window run twice (a redelivery after a worker died) restarts its sync log row and upserts
the same records again, which the guarded upsert turns into no change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from trestle_tasks.core.errors import TrestleTasksError, is_retriable
from trestle_tasks.core.logs import log_context, redact
from trestle_tasks.core.timestamps import ODataTimestamp, epoch_seconds_of
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import FAILED, SUCCEEDED
from trestle_tasks.sync.media import MediaRefresh, media_expansion, refresh_media, take_expansions
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome
from trestle_tasks.sync.phases import Phase
from trestle_tasks.sync.prefetch import interleaved
from trestle_tasks.trestle.client import Page, TrestleClient
from trestle_tasks.trestle.pager import (
    TIMESTAMP_FIELD,
    KeysetRange,
    range_filter,
    replication_query,
    walk_keyset,
    walk_links,
)
from trestle_tasks.trestle.query import ODataQuery

log = logging.getLogger(__name__)


def sync_window(
    plan: RunPlan,
    window: Window,
    *,
    store: Store,
    client: TrestleClient,
    page_size: int = 1000,
    on_page: Callable[[int], None] | None = None,
    media_since: int | None = None,
    replication_min: int = 0,
    on_stored: Callable[[list[float]], None] | None = None,
) -> WindowOutcome:
    """Walk and load one window; failures are recorded and returned, never lost.

    With `media_since` (Property windows of an incremental run), listings whose
    PhotosChangeTimestamp moved after it get their whole Media set replaced. `on_stored`
    is told, for each page committed, the seconds from each record's ModificationTimestamp
    to its commit (the copy's freshness; the caller decides where it is kept).
    """
    context = {"run_id": plan.run_id, "resource": plan.resource, "window": window.window_id}
    # Lines from deeper down (loader, pager, client) carry the context too, whichever
    # thread or worker runs this window.
    with log_context(**context):
        return _sync_window(plan, window, store=store, client=client, page_size=page_size,
                            on_page=on_page, media_since=media_since,
                            replication_min=replication_min, on_stored=on_stored)


def expect_record_fields(client: TrestleClient, store: Store, resource: str) -> None:
    """Tell the client the names a record of `resource` has, as the store laid it out from
    the metadata: its pages are decoded faster, to the same records (known_keys.py)."""
    client.expect_fields(resource, store.loader(resource).layout.spec.record_names())


def uses_replication(window: Window, replication_min: int) -> bool:
    return bool(replication_min) and (window.expected or 0) >= replication_min


def window_pages(plan: RunPlan, window: Window, client: TrestleClient, *, page_size: int,
                 base: ODataQuery | None, replication_min: int) -> Iterator[Page]:
    """The window's pages: its lanes walked at once (sync/window_cuts.py), in the order their
    pages arrive."""
    walks = [lane_pages(plan, lower, upper, client, page_size=page_size, base=base,
                        replication=uses_replication(window, replication_min))
             for lower, upper in window.lane_bounds()]
    return interleaved(walks)


def lane_pages(plan: RunPlan, lower: int | None, upper: int, client: TrestleClient, *,
               page_size: int, base: ODataQuery | None, replication: bool) -> Iterator[Page]:
    """Keyset paging over (lower, upper], or Trestle's replication endpoint for a window
    of at least `replication_min` records, whose link chain this one task follows from
    start to end: a link dies after 5 idle minutes, so it is never parked between tasks.
    Whether replication takes `$expand` is not documented: it is walked without."""
    if replication:
        query = ODataQuery(plan.resource, filter=range_filter(lower, upper))
        return walk_links(client, replication_query(query, top=page_size))
    keyset = KeysetRange(
        plan.resource,
        plan.key_field,
        TIMESTAMP_FIELD,
        lower=(ODataTimestamp(lower), None) if lower is not None else None,
        upper=ODataTimestamp(upper),
    )
    return walk_keyset(client, keyset, page_size=page_size, base=base)


def _sync_window(plan: RunPlan, window: Window, *, store: Store, client: TrestleClient,
                 page_size: int, on_page: Callable[[int], None] | None,
                 media_since: int | None, replication_min: int,
                 on_stored: Callable[[list[float]], None] | None = None) -> WindowOutcome:
    sync_log = store.sync_log
    sync_log.start_window(plan.run_id, plan.resource, window.window_id)
    phase = Phase(log, "window", stats=client.stats).start(
        "window %s started %s", window.window_id, window.describe(),
        expected_records=window.expected)
    fetched = upserted = rejected = pages = 0
    db_seconds = 0.0  # how hard the database pushes back: a signal for window concurrency
    media = MediaRefresh()
    # Photo sets come inline with their listings ($expand): no request of their own.
    inline_media = media_since is not None and not uses_replication(window, replication_min)
    base = ODataQuery(plan.resource, expand=(media_expansion(),)) if inline_media else None
    try:
        expect_record_fields(client, store, plan.resource)
        for page in window_pages(plan, window, client, page_size=page_size, base=base,
                                 replication_min=replication_min):
            if not page.records:
                continue
            expansions = take_expansions(page.records) if base is not None else None
            stamps = epoch_seconds_of(page.records, TIMESTAMP_FIELD) if on_stored else []
            loading_since = time.monotonic()
            result = store.upsert(plan.resource, page.records, run_id=plan.run_id,
                                  window_id=window.window_id)
            db_seconds += time.monotonic() - loading_since
            if on_stored is not None and stamps:
                committed_at = time.time()
                on_stored([committed_at - stamp for stamp in stamps])
            pages += 1
            fetched += len(page.records)
            upserted += result.upserted
            rejected += result.rejected
            if media_since is not None:
                media += refresh_media(page.records, media_since, store=store, client=client,
                                       expansions=expansions)
            if on_page is not None:
                on_page(len(page.records))
    except Exception as error:  # recorded and returned: the run fails visibly, loads kept
        # Redacted here because the outcome travels as a Celery result and lands in the
        # run's details, which are not redacted on the way in.
        message = redact(str(error))
        figures = phase.figures(fetched)
        sync_log.finish_window(plan.run_id, plan.resource, window.window_id, status=FAILED,
                              api_requests=figures.requests, retries=figures.retries,
                              rate_limited=figures.rate_limited,
                              api_bytes=figures.api_bytes, error=message)
        phase.end("window %s failed after %d records: %s", window.window_id, fetched,
                  message, figures=figures, outcome=FAILED, rejected=rejected)
        # Decided in one place (a window retried starts over: an expired replication link
        # is cured by that); an error nobody knows is a bug, failed at once with its traceback.
        retriable = is_retriable(error, from_the_start=True)
        if not retriable and not isinstance(error, TrestleTasksError):
            log.error("window %s hit an unexpected error (a bug, not retried)",
                      window.window_id, exc_info=error)
        return WindowOutcome(window.window_id, window.index, FAILED, fetched, upserted, rejected,
                             figures.requests, figures.duration_s, message,
                             retriable=retriable,
                             retries=figures.retries, rate_limited=figures.rate_limited,
                             pages=pages, db_seconds=db_seconds,
                             error_kind=type(error).__name__)
    figures = phase.figures(fetched)
    sync_log.finish_window(plan.run_id, plan.resource, window.window_id, status=SUCCEEDED,
                          api_requests=figures.requests, retries=figures.retries,
                          rate_limited=figures.rate_limited,
                          api_bytes=figures.api_bytes)
    phase.end("window %s done: %d rejected", window.window_id, rejected, figures=figures,
              rejected=rejected)
    return WindowOutcome(window.window_id, window.index, SUCCEEDED, fetched, upserted, rejected,
                         figures.requests, figures.duration_s, media_listings=media.listings,
                         media_removed=media.removed, media_incomplete=media.incomplete,
                         media_refetched=media.refetched, pages=pages, db_seconds=db_seconds,
                         retries=figures.retries, rate_limited=figures.rate_limited)


def media_since(plan: RunPlan, synced_resources: tuple[str, ...] | list[str],
                store: Store) -> int | None:
    """The bound for photo-set refreshes: only incremental Property runs, only when Media is
    synced too (a full load fetches every Media row through the Media resource anyway)."""
    if plan.resource != "Property" or plan.lower_ticks is None:
        return None
    if "Media" not in synced_resources or "Media" not in store.resources():
        return None
    return plan.lower_ticks
