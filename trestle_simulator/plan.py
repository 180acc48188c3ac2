"""The skeleton of the generated feed: every record's key, ModificationTimestamp and links.

Only what indexes and cross-references need is decided here, up front and cheaply (a few
seconds for 100,000 listings): keys, timestamps (with the tie structure that breaks naive
incremental sync), how many Media and OpenHouse rows each listing has, and which agent
and office list it. Full records are generated later, one at a time, from the seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from .clock import HISTORY_END_TICKS, HISTORY_START_TICKS, TICKS_PER_DAY, ticks_at

HISTORY_START = HISTORY_START_TICKS
HISTORY_END = HISTORY_END_TICKS
# The mass update (a Trestle remap touching many rows at once) lands in this span.
MASS_UPDATE_START = ticks_at(2024, 1, 1)
MASS_UPDATE_END = ticks_at(2025, 6, 1)

MASS_UPDATE_MAX = 1500
CLUSTER_SHARE = 0.10  # share of records in small same-timestamp clusters
CLUSTER_SIZES = (2, 50)
TWIN_SHARE = 0.005  # pairs whose timestamps differ only in the 7th fractional digit
MEDIA_MAX_PER_LISTING = 20
OPEN_HOUSE_SHARE = 0.20


def hash_key(seed: int, resource: str, ordinal: int) -> str:
    """A stable, hash-like key: its sort order has nothing to do with creation order."""
    digest = hashlib.blake2b(f"{seed}:{resource}:{ordinal}".encode(), digest_size=8)
    return digest.hexdigest()


def pad_key(key: str, width: int | None) -> str:
    """Keys at full declared width for fill="max" (still unique: the prefix is)."""
    if width is None or len(key) >= width:
        return key
    return key + "0" * (width - len(key))


def spread_ticks(rng: random.Random, count: int, mass_update: bool) -> list[int]:
    """ModificationTimestamps with realistic ties.

    One mass-update group of min(1500, count // 3) records sharing one timestamp (more
    than a page's worth), clusters of 2-50 covering ~10% of records, a few pairs that
    differ only in the 7th digit (they collapse or swap when rounded to microseconds), and
    distinct random instants for the rest. Which record gets what is a random permutation.
    """
    ticks = [0] * count
    order = list(range(count))
    rng.shuffle(order)
    position = 0
    if mass_update and count >= 3:
        size = min(MASS_UPDATE_MAX, count // 3)
        instant = _seventh_digit_set(rng, rng.randrange(MASS_UPDATE_START, MASS_UPDATE_END))
        for index in order[:size]:
            ticks[index] = instant
        position = size
    target = position + int(count * CLUSTER_SHARE)
    while position < target:
        size = min(rng.randint(*CLUSTER_SIZES), target - position)
        if size < 2:
            break
        instant = _seventh_digit_set(rng, rng.randrange(HISTORY_START, HISTORY_END))
        for index in order[position : position + size]:
            ticks[index] = instant
        position += size
    for _ in range(int(count * TWIN_SHARE)):
        if position + 2 > count:
            break
        instant = _seventh_digit_set(rng, rng.randrange(HISTORY_START, HISTORY_END))
        ticks[order[position]] = instant
        ticks[order[position + 1]] = instant + rng.randint(1, 9)
        position += 2
    for index in order[position:]:
        ticks[index] = rng.randrange(HISTORY_START, HISTORY_END)
    return ticks


def _seventh_digit_set(rng: random.Random, instant: int) -> int:
    """Make sure the last digit matters, so microsecond rounding visibly changes it."""
    return instant - instant % 10 + rng.randint(1, 9)


@dataclass
class FeedPlan:
    """Keys, timestamps and relations of every generated record, by ordinal."""

    seed: int
    property_keys: list[str]
    property_ticks: list[int]
    photo_ticks: list[int | None]
    media_counts: list[int]
    listing_members: list[int]  # list agent's member ordinal per listing
    member_keys: list[str]
    member_ticks: list[int]
    member_offices: list[int]  # office ordinal per member
    office_keys: list[str]
    office_ticks: list[int]
    open_houses: list[tuple[int, int]]  # (listing ordinal, sequence) per open house
    open_house_keys: list[str]
    open_house_ticks: list[int]
    key_widths: dict[str, int | None] = field(default_factory=dict)

    def media_key(self, listing: int, sequence: int) -> str:
        base = f"{self.property_keys[listing][:16]}m{sequence:02d}"
        return pad_key(base, self.key_widths.get("Media"))


def build_plan(
    seed: int,
    records: int,
    key_widths: dict[str, int | None],
    key_seed: int | None = None,
    media_max: int = MEDIA_MAX_PER_LISTING,
) -> FeedPlan:
    """Decide the feed's skeleton from the seed alone (no clock, no request order).

    Keys come from `key_seed` (None: `seed`) and the ordinal only, so two feeds given one
    key seed serve the same keys for the same ordinals, each with its own data: the
    overlap a deployment replicating several MLS feeds must keep apart. A listing has at
    most `media_max` Media rows (about 0.43 of it on average over listings with photos).
    """
    rng = random.Random(f"{seed}:plan")
    members = max(5, records // 10)
    offices = max(2, records // 100)
    keys_from = seed if key_seed is None else key_seed

    def keys(resource: str, count: int) -> list[str]:
        width = key_widths.get(resource)
        return [pad_key(hash_key(keys_from, resource, i), width) for i in range(count)]

    property_ticks = spread_ticks(random.Random(f"{seed}:ticks:Property"), records, True)
    media_counts: list[int] = []
    photo_ticks: list[int | None] = []
    listing_members: list[int] = []
    open_houses: list[tuple[int, int]] = []
    open_house_ticks: list[int] = []
    for listing, modified in enumerate(property_ticks):
        # ~12% of listings have no media at all; the rest lean towards fewer photos.
        count = (
            0
            if rng.random() < 0.12
            else min(media_max, 1 + int(rng.triangular(0, media_max, media_max * 3 / 10)))
        )
        media_counts.append(count)
        # Photos changed at or before the listing's last modification.
        photos = modified - rng.randrange(0, 120 * TICKS_PER_DAY) if count else None
        photo_ticks.append(max(HISTORY_START, photos) if photos is not None else None)
        listing_members.append(rng.randrange(members))
        if rng.random() < OPEN_HOUSE_SHARE:
            for sequence in range(1 + (rng.random() < 0.3)):
                open_houses.append((listing, sequence))
                open_house_ticks.append(
                    _seventh_digit_set(rng, modified - rng.randrange(0, 30 * TICKS_PER_DAY))
                )
    member_offices = [rng.randrange(offices) for _ in range(members)]
    open_house_keys = [
        pad_key("oh" + hash_key(keys_from, "OpenHouse", i), key_widths.get("OpenHouse"))
        for i in range(len(open_houses))
    ]
    return FeedPlan(
        seed=seed,
        property_keys=keys("Property", records),
        property_ticks=property_ticks,
        photo_ticks=photo_ticks,
        media_counts=media_counts,
        listing_members=listing_members,
        member_keys=keys("Member", members),
        member_ticks=spread_ticks(random.Random(f"{seed}:ticks:Member"), members, True),
        member_offices=member_offices,
        office_keys=keys("Office", offices),
        office_ticks=spread_ticks(random.Random(f"{seed}:ticks:Office"), offices, True),
        open_houses=open_houses,
        open_house_keys=open_house_keys,
        open_house_ticks=open_house_ticks,
        key_widths=dict(key_widths),
    )
