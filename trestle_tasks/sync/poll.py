"""The fast path: one cheap request finds what changed since the watermark, and a small
delta is stored at once, without a plan, a window ledger or a finalize.

A poll is a run in miniature, under the same rules: it holds the resource's run lock (so
it never overlaps a run, a reconcile or another poll), walks (watermark, now - settle] in
keyset order on (ModificationTimestamp, key) with `$expand=Media` for Property, and moves
the watermark to its upper bound, under its own fence, only when the walk reached the end.
A delta larger than `max_pages` pages is not the fast path's: what was fetched is stored
(idempotent, and fresher), the watermark stays, and the caller starts a regular run.

An idle poll costs one request whose answer is an empty page: `$top` is small, and asking
for keys only first would cost a second request for every change found.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from trestle_tasks.coordination.locks import POLL_OWNER_PREFIX, LockKeeper, RunLock, lock_name
from trestle_tasks.core.errors import TrestleTasksError, is_retriable
from trestle_tasks.core.logs import log_context, redact
from trestle_tasks.core.timestamps import TICKS_PER_SECOND, ODataTimestamp, epoch_seconds_of
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import Watermark
from trestle_tasks.sync.media import MediaRefresh, media_expansion, refresh_media, take_expansions
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import TIMESTAMP_FIELD, KeysetRange, walk_keyset
from trestle_tasks.trestle.query import ODataQuery

log = logging.getLogger(__name__)

# What a poll found.
IDLE = "idle"  # nothing changed: the watermark moved to the poll's upper bound
CHANGED = "changed"  # a small delta, stored; the watermark moved past it
TOO_MANY = "too_many"  # more than the fast path takes: stored what it fetched, run needed
BUSY = "busy"  # a run (or reconcile, or another poll) holds the resource
NO_WATERMARK = "no_watermark"  # never synced: a first load is a run's job
FAILED = "failed"
OUTCOMES = (IDLE, CHANGED, TOO_MANY, BUSY, NO_WATERMARK, FAILED)

POLL_TOP = 200  # records a poll page; a handful is the usual delta
POLL_MAX_PAGES = 3  # beyond this, a delta is a run's: windows, lanes, the ledger
# The poll's lease on the run lock, renewed every third of it while it works; released at
# its end.
POLL_LEASE_S = 60.0


@dataclass(frozen=True)
class PollOutcome:
    resource: str
    status: str
    fetched: int = 0
    upserted: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    api_bytes: int = 0
    seconds: float = 0.0
    media_listings: int = 0
    watermark_from: str | None = None
    watermark_to: str | None = None  # where this poll moved it (None: not moved)
    # Seconds from each stored record's ModificationTimestamp to its commit here: the
    # copy's freshness, measured. Negative: the record was stamped in our future (clocks).
    latencies_s: tuple[float, ...] = field(default=(), repr=False)
    error: str | None = None
    retriable: bool = False
    # Trestle's clock minus ours, from its last answer's Date header (None: not told).
    server_clock_offset_s: float | None = None

    @property
    def changed(self) -> bool:
        return self.fetched > 0


def new_poll_owner() -> str:
    """The poll's name as the run lock's owner (`status` shows it while it holds it)."""
    return f"{POLL_OWNER_PREFIX}{uuid.uuid4().hex[:12]}"


def poll_resource(
    resource: str,
    *,
    store: Store,
    client: TrestleClient,
    lock: RunLock,
    log_run_id: str,
    with_media: bool = False,
    top: int = POLL_TOP,
    max_pages: int = POLL_MAX_PAGES,
    settle_s: float = 0.0,
    owner: str | None = None,
    now: Callable[[], ODataTimestamp] = ODataTimestamp.now,
    clock: Callable[[], float] = time.time,
) -> PollOutcome:
    """Poll `resource` once; failures are returned, never raised (a poll is retried by the
    next tick). `log_run_id` is the sync log row the poll's records are counted in (the
    caller keeps one per resource and hour, opened before this is called); `with_media`:
    Property photo sets come inline and are replaced where PhotosChangeTimestamp moved."""
    owner = owner or new_poll_owner()
    grant = lock.acquire(lock_name(resource), owner=owner, ttl_s=POLL_LEASE_S)
    if grant is None:
        return PollOutcome(resource, BUSY)
    started, requests_before = time.monotonic(), client.stats.requests
    stats_before = (client.stats.retries, client.stats.rate_limited, client.stats.api_bytes)
    fetched = upserted = rejected = 0
    latencies: list[float] = []
    media = MediaRefresh()
    mark: Watermark | None = None

    def outcome(status: str, *, watermark_to: str | None = None, error: str | None = None,
                retriable: bool = False) -> PollOutcome:
        stats = client.stats
        return PollOutcome(
            resource, status, fetched=fetched, upserted=upserted, rejected=rejected,
            requests=stats.requests - requests_before,
            retries=stats.retries - stats_before[0],
            rate_limited=stats.rate_limited - stats_before[1],
            api_bytes=stats.api_bytes - stats_before[2],
            seconds=time.monotonic() - started, media_listings=media.listings,
            watermark_from=mark.text if mark is not None else None,
            watermark_to=watermark_to, latencies_s=tuple(latencies), error=error,
            retriable=retriable, server_clock_offset_s=client.server_clock_offset_s)

    try:
        # Renewed while the poll works: a slow answer (retries, a long timeout) must not
        # let a run take the resource under it. Were it lost all the same, the watermark
        # would not move: the fence of the run that took it is newer.
        with log_context(resource=resource, run_id=log_run_id), \
                LockKeeper(lock, grant, POLL_LEASE_S):
            mark = store.sync_log.read_watermark(resource)
            if mark is None:
                return outcome(NO_WATERMARK)
            upper = now().ticks - int(settle_s * TICKS_PER_SECOND)
            if upper <= mark.ticks:
                return outcome(IDLE)
            key_field = layout_of(store.engine, resource, store.schema).key_field.name
            keyset = KeysetRange(resource, key_field, TIMESTAMP_FIELD,
                                  lower=(mark.timestamp, None), upper=ODataTimestamp(upper))
            base = ODataQuery(resource, expand=(media_expansion(),)) if with_media else None
            complete = False
            pages = walk_keyset(client, keyset, page_size=top, base=base)
            for number, page in enumerate(pages, start=1):
                if page.records:
                    expansions = take_expansions(page.records) if with_media else None
                    stamps = epoch_seconds_of(page.records, TIMESTAMP_FIELD)
                    result = store.upsert(resource, page.records, run_id=log_run_id)
                    committed_at = clock()
                    fetched += len(page.records)
                    upserted += result.upserted
                    rejected += result.rejected
                    latencies.extend(committed_at - stamp for stamp in stamps)
                    if with_media:
                        media += refresh_media(page.records, mark.ticks, store=store,
                                               client=client, expansions=expansions)
                if page.next_link is None:
                    complete = True
                    break
                if number >= max_pages:
                    break
            if not complete:
                log.info("poll of %s found more than %d records: a run takes the rest",
                         resource, fetched)
                return outcome(TOO_MANY)
            to = Watermark(upper)
            moved = store.sync_log.advance_watermark(resource, to, run_id=log_run_id,
                                                     fence=grant.fence)
            return outcome(CHANGED if fetched else IDLE,
                           watermark_to=to.text if moved else None)
    except Exception as error:  # the next tick polls again; a bug is logged with its trace
        retriable = is_retriable(error)
        if not retriable and not isinstance(error, TrestleTasksError):
            log.error("poll of %s hit an unexpected error", resource, exc_info=error)
        return outcome(FAILED, error=redact(f"{type(error).__name__}: {error}"),
                       retriable=retriable)
    finally:
        lock.release(grant)
