"""Photos: when a listing's PhotosChangeTimestamp moves, its whole Media set is fetched again.

Trestle does not announce removed photos; a listing's new PhotosChangeTimestamp is the
signal to replace its set: rows fetched are upserted, stored rows no longer in the set are
marked deleted. A set that comes back smaller than the listing's PhotosCount (Trestle has
answered empty media lists under quota pressure) is not evidence of fewer photos: it is
left untouched and counted as incomplete.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trestle_tasks.store.store import Store
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import walk_links
from trestle_tasks.trestle.query import Expr, ODataQuery, eq
from trestle_tasks.trestle.timestamps import ODataTimestamp

log = logging.getLogger(__name__)
PARENT_FIELD = "ResourceRecordKey"
LISTINGS_PER_REQUEST = 20


@dataclass
class MediaRefresh:
    listings: int = 0
    fetched: int = 0
    removed: int = 0
    incomplete: int = 0

    def __iadd__(self, other: MediaRefresh) -> MediaRefresh:
        self.listings += other.listings
        self.fetched += other.fetched
        self.removed += other.removed
        self.incomplete += other.incomplete
        return self


def photos_changed(record: dict[str, Any], since_ticks: int) -> bool:
    value = record.get("PhotosChangeTimestamp")
    if not isinstance(value, str):
        return False
    try:
        return ODataTimestamp.parse(value).ticks > since_ticks
    except ValueError:
        return False


def refresh_media(
    listings: Iterable[dict[str, Any]],
    since_ticks: int,
    *,
    store: Store,
    client: TrestleClient,
) -> MediaRefresh:
    """Replace the Media sets of the listings whose photos changed after `since_ticks`."""
    changed = [r for r in listings if photos_changed(r, since_ticks) and r.get("ListingKey")]
    total = MediaRefresh()
    for start in range(0, len(changed), LISTINGS_PER_REQUEST):
        total += _refresh_chunk(changed[start:start + LISTINGS_PER_REQUEST], store, client)
    return total


def _refresh_chunk(listings: list[dict[str, Any]], store: Store,
                   client: TrestleClient) -> MediaRefresh:
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
    complete = []
    result = MediaRefresh(listings=len(listings))
    for listing in listings:
        key = str(listing["ListingKey"])
        expected = listing.get("PhotosCount")
        if isinstance(expected, int) and len(by_listing.get(key, [])) < expected:
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
    if result.incomplete:
        log.warning("%d listing(s) answered fewer Media rows than their PhotosCount; their "
                    "stored photos were kept", result.incomplete)
    return result
