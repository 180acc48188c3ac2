"""Repairing named records: fetch their current version and upsert it.

What a reconcile found missing, restored or stale is fetched as `sync/repair_plan.py`
chose: stretches of time dense with them walked in keyset order, the others in batches of
keys (see `trestle/by_key.py` for the URL bound), and upserted through the same guarded loader as a
sync, so a version older than the stored one still never overwrites it. A repaired listing
comes with its children, as complete as a synced one: its photo set arrives inline
(`$expand=Media`, replaced as a sync replaces a changed set) and its open houses are
fetched by listing key and replaced, when those resources are synced into this database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.store import Store
from trestle_tasks.sync.media import MediaRefresh, media_expansion, refresh_media, take_expansions
from trestle_tasks.sync.repair_plan import RepairPlan
from trestle_tasks.trestle.by_key import fetch_by_keys
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.trestle.query import ODataQuery

log = logging.getLogger(__name__)
OPEN_HOUSE = "OpenHouse"
OPEN_HOUSE_PARENT = "ListingKey"
# Every photo set of a repaired listing is replaced, whatever its PhotosChangeTimestamp.
ANY_TIME = -(2**62)


@dataclass
class RepairOutcome:
    fetched: int = 0  # records received
    upserted: int = 0
    rejected: int = 0
    received_keys: set[Any] = field(default_factory=set)
    media: MediaRefresh = field(default_factory=MediaRefresh)
    open_houses_fetched: int = 0
    open_houses_removed: int = 0
    # Keys no URL can name (see trestle/by_key.py): left out, counted as rejected.
    unfetchable_keys: list[str] = field(default_factory=list)

    def unfetchable(self, key: str) -> None:
        """A key too long for the by-key query: one record lost to a repair, not the
        repair of all the others."""
        log.warning("repair: the key %r… is too long for any by-key query; that record "
                    "is left out (rejected) and the others are repaired", key[:40])
        self.unfetchable_keys.append(key)
        self.rejected += 1

    def vanished(self, asked: Sequence[Any]) -> int:
        """Asked for and not returned: they left the feed after the census."""
        return sum(1 for key in asked if key not in self.received_keys)


@dataclass(frozen=True)
class Children:
    """Which of a listing's child resources are kept in this database."""

    media: bool = False
    open_houses: bool = False

    @classmethod
    def of(cls, resource: str, synced: Sequence[str], store: Store) -> Children:
        if resource != "Property":
            return cls()
        tables = set(store.resources())
        return cls(media="Media" in synced and "Media" in tables,
                   open_houses=OPEN_HOUSE in synced and OPEN_HOUSE in tables)


def repair(resource: str, plan: RepairPlan, *, key_field: str, store: Store,
           client: TrestleClient, run_id: str, children: Children = Children(),
           on_records: Callable[[int], None] | None = None) -> RepairOutcome:
    """Fetch and upsert the records the plan names (and their children): its ranges walked
    in keyset order, keeping only the wanted records, the rest fetched by key."""
    outcome = RepairOutcome()
    expand = (media_expansion(),) if children.media else ()
    for walk in plan.ranges:
        window = KeysetRange(resource, key_field, lower=(ODataTimestamp(walk.lower), None),
                              upper=ODataTimestamp(walk.upper))
        wanted = {str(k) for k in walk.keys}
        for page in walk_keyset(client, window, base=ODataQuery(resource, expand=expand)):
            records = [r for r in page.records if str(r.get(key_field)) in wanted]
            _store_page(records, resource, key_field, store=store, client=client,
                        run_id=run_id, children=children, outcome=outcome)
            if on_records is not None:
                on_records(len(records))
    for page in fetch_by_keys(client, resource, key_field, [str(k) for k in plan.by_key],
                              expand=expand, on_too_long=outcome.unfetchable):
        _store_page(page.records, resource, key_field, store=store, client=client,
                    run_id=run_id, children=children, outcome=outcome)
        if on_records is not None:
            on_records(len(page.records))
    return outcome


def _store_page(records: list[dict[str, Any]], resource: str, key_field: str, *,
                store: Store, client: TrestleClient, run_id: str, children: Children,
                outcome: RepairOutcome) -> None:
    if not records:
        return
    expansions = take_expansions(records) if children.media else None
    outcome.received_keys.update(r.get(key_field) for r in records)
    result = store.upsert(resource, records, run_id=run_id)
    outcome.fetched += len(records)
    outcome.upserted += result.upserted
    outcome.rejected += result.rejected
    if children.media:
        outcome.media += refresh_media(records, ANY_TIME, store=store, client=client,
                                       expansions=expansions)
    if children.open_houses:
        listing_keys = [str(r[key_field]) for r in records if r.get(key_field)]
        fetched, removed = replace_open_houses(listing_keys, store=store, client=client,
                                               on_too_long=_open_houses_unfetchable)
        outcome.open_houses_fetched += fetched
        outcome.open_houses_removed += removed


def _open_houses_unfetchable(listing_key: str) -> None:
    log.warning("repair: the listing key %r… is too long for a by-key query; its open "
                "houses are left as they are", listing_key[:40])


def replace_open_houses(listing_keys: Sequence[str], *, store: Store, client: TrestleClient,
                        on_too_long: Callable[[str], None] | None = None) -> tuple[int, int]:
    """Upsert the listings' open houses and mark deleted the stored ones no longer listed.

    A direct query by listing key is complete (unlike an inline expansion under quota
    pressure), so what it does not return is gone.
    """
    rows: list[dict[str, Any]] = []
    for page in fetch_by_keys(client, OPEN_HOUSE, OPEN_HOUSE_PARENT, listing_keys,
                              orderby=((OPEN_HOUSE_PARENT, False), ("OpenHouseKey", False)),
                              on_too_long=on_too_long):
        rows.extend(page.records)
    if rows:
        store.upsert(OPEN_HOUSE, rows)
    try:
        stored = store.child_keys(OPEN_HOUSE, OPEN_HOUSE_PARENT, listing_keys)
    except ValueError:  # ListingKey is not a typed column here: nothing to compare with
        return len(rows), 0
    current = {row.get("OpenHouseKey") for row in rows}
    stale = sorted(k for keys in stored.values() for k in keys if k not in current)
    removed = store.mark_deleted(OPEN_HOUSE, stale) if stale else 0
    return len(rows), removed
