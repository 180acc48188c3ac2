"""Photos: when a listing's PhotosChangeTimestamp moves, its whole Media set is fetched again.

Trestle does not announce removed photos; a listing's new PhotosChangeTimestamp is the
signal to replace its set: rows fetched are upserted, stored rows no longer in the set are
marked deleted. A set that comes back smaller than the listing's PhotosCount (Trestle has
answered empty media lists under quota pressure) is not evidence of fewer photos: it is
left untouched and counted as incomplete.

Property windows of an incremental run are walked with `$expand=Media`, so the new sets
arrive with their listings and cost no request of their own; only a short expansion is
asked for again, 20 listings to a request.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.store import Store
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import walk_links
from trestle_tasks.trestle.query import Expand, Expr, ODataQuery, eq

log = logging.getLogger(__name__)
PARENT_FIELD = "ResourceRecordKey"
LISTINGS_PER_REQUEST = 20
EXPANSION = "Media"


@dataclass
class MediaRefresh:
    listings: int = 0
    fetched: int = 0
    removed: int = 0
    incomplete: int = 0
    refetched: int = 0  # listings whose inline expansion was short and were asked again

    def __iadd__(self, other: MediaRefresh) -> MediaRefresh:
        self.listings += other.listings
        self.fetched += other.fetched
        self.removed += other.removed
        self.incomplete += other.incomplete
        self.refetched += other.refetched
        return self


def media_expansion() -> Expand:
    """`$expand=Media` on a Property walk: photo sets arrive with their listings."""
    return Expand(EXPANSION, orderby=(("MediaKey", False),))


def take_expansions(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Remove the inline Media lists from Property records (they are not Property fields)."""
    expansions = {}
    for record in records:
        rows = record.pop(EXPANSION, None)
        if isinstance(rows, list) and record.get("ListingKey") is not None:
            expansions[str(record["ListingKey"])] = rows
    return expansions


def photos_changed(record: dict[str, Any], since_ticks: int) -> bool:
    value = record.get("PhotosChangeTimestamp")
    if not isinstance(value, str):
        return False
    try:
        return ODataTimestamp.parse(value).ticks > since_ticks
    except ValueError:
        return False


def _complete(listing: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    expected = listing.get("PhotosCount")
    return not (isinstance(expected, int) and len(rows) < expected)


def refresh_media(
    listings: Iterable[dict[str, Any]],
    since_ticks: int,
    *,
    store: Store,
    client: TrestleClient,
    expansions: dict[str, list[dict[str, Any]]] | None = None,
) -> MediaRefresh:
    """Replace the Media sets of the listings whose photos changed after `since_ticks`.

    With `expansions` (the page was walked with `$expand=Media`), complete inline sets are
    used as they are, at no extra request; a set shorter than its PhotosCount (Trestle
    has answered `[]` under quota pressure) is asked for again, batched, before anything is
    concluded from it.
    """
    changed = [r for r in listings if photos_changed(r, since_ticks) and r.get("ListingKey")]
    total = MediaRefresh()
    if not changed:
        return total
    # Start and end lines (fields media_refresh="start"/"end"; run and window come from
    # the window's log context), so a refresh can be told apart from the rest of its window.
    log.info("refreshing the photo sets of %d listing(s)", len(changed),
             extra={"media_refresh": "start", "listings": len(changed),
                    "inline": expansions is not None})
    if expansions is not None:
        inline = [r for r in changed if _complete(r, expansions.get(str(r["ListingKey"]), []))]
        if inline:
            total += _replace_sets(inline, expansions, store)
        changed = [r for r in changed if r not in inline]
        total.refetched = len(changed)
    for start in range(0, len(changed), LISTINGS_PER_REQUEST):
        chunk = changed[start:start + LISTINGS_PER_REQUEST]
        total += _replace_sets(chunk, _fetch_sets(chunk, client), store)
    if total.incomplete:
        log.warning("%d listing(s) answered fewer Media rows than their PhotosCount; their "
                    "stored photos were kept", total.incomplete)
    log.info("photo sets of %d listing(s) refreshed: %d row(s) fetched, %d removed, %d asked "
             "for again", total.listings, total.fetched, total.removed, total.refetched,
             extra={"media_refresh": "end", "listings": total.listings,
                    "fetched": total.fetched, "removed": total.removed,
                    "refetched": total.refetched, "incomplete": total.incomplete})
    return total


def _fetch_sets(listings: list[dict[str, Any]], client: TrestleClient
                ) -> dict[str, list[dict[str, Any]]]:
    """The Media rows of up to LISTINGS_PER_REQUEST listings, in one walk."""
    keys = [str(listing["ListingKey"]) for listing in listings]
    condition: Expr = eq(PARENT_FIELD, keys[0])
    for key in keys[1:]:
        condition = condition | eq(PARENT_FIELD, key)
    query = ODataQuery("Media", filter=condition, top=1000,
                       orderby=((PARENT_FIELD, False), ("MediaKey", False)))
    by_listing: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for page in walk_links(client, query):
        for record in page.records:
            by_listing[str(record.get(PARENT_FIELD))].append(record)
    return by_listing


def _replace_sets(listings: list[dict[str, Any]], by_listing: dict[str, list[dict[str, Any]]],
                  store: Store) -> MediaRefresh:
    complete = []
    result = MediaRefresh(listings=len(listings))
    for listing in listings:
        key = str(listing["ListingKey"])
        if not _complete(listing, by_listing.get(key, [])):
            result.incomplete += 1  # not evidence of fewer photos: leave the stored set
            continue
        complete.append(key)
    fresh = [record for key in complete for record in by_listing.get(key, [])]
    if fresh:
        store.upsert("Media", fresh)
    result.fetched = len(fresh)
    stored = store.child_keys("Media", PARENT_FIELD, complete)
    fetched_keys = {record.get("MediaKey") for record in fresh}
    stale = sorted(k for key in complete for k in stored.get(key, set()) - fetched_keys)
    if stale:
        result.removed = store.mark_deleted("Media", stale)
    return result
