"""Feed changes no incremental sync can see, made through the simulator's control API."""

from __future__ import annotations

import uuid

from trestle_tasks.core.timestamps import ODataTimestamp

DAY_TICKS = 864_000_000_000


def stamp(ticks: int) -> str:
    return ODataTimestamp(ticks).to_odata()


def arrive_below(sim, count: int, ticks: int) -> list[str]:
    """`count` new listings, each with photos and an open house, stamped at `ticks` (a
    listing made visible to the feed, an office joining): their keys."""
    listings = sim.records("Property")
    media = sim.records("Media")
    open_houses = sim.records("OpenHouse")
    with_photos = next(r for r in listings if r.get("PhotosCount"))
    photos = [m for m in media if m["ResourceRecordKey"] == with_photos["ListingKey"]]
    template_open_house = open_houses[0]
    keys: list[str] = []
    new_listings, new_media, new_open_houses = [], [], []
    for _ in range(count):
        key = uuid.uuid4().hex[:16]
        keys.append(key)
        new_listings.append({**with_photos, "ListingKey": key, "ListingId": key[:12],
                             "PhotosCount": len(photos), "PhotosChangeTimestamp": stamp(ticks),
                             "ModificationTimestamp": stamp(ticks)})
        new_media.extend({**m, "MediaKey": uuid.uuid4().hex[:16], "ResourceRecordKey": key,
                          "ModificationTimestamp": stamp(ticks)} for m in photos)
        new_open_houses.append({**template_open_house, "OpenHouseKey": uuid.uuid4().hex[:16],
                                "ListingKey": key, "ModificationTimestamp": stamp(ticks)})
    sim.upsert("Property", new_listings)
    sim.upsert("Media", new_media)
    sim.upsert("OpenHouse", new_open_houses)
    return keys


def change_below(sim, keys: list[str], ticks: int) -> None:
    """Change these listings with a timestamp of `ticks` (a late commit)."""
    sim.upsert("Property", [{"ListingKey": key, "PublicRemarks": f"late commit {i}",
                             "ModificationTimestamp": stamp(ticks)}
                            for i, key in enumerate(keys)])
