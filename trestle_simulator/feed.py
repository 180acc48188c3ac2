"""The whole simulated MLS feed: every entity set's data, and the changes tests make to it.

Built from the config alone (seed, key seed, record count, metadata, fill). The control API writes
through here: mutations stamp records with the real clock, strictly later than anything
already in the resource, so an incremental sync has something new to find.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from typing import Any

from .clock import format_ticks, now_ticks
from .compact import CompactResourceData, GroupOrder
from .config import SimulatorConfig
from .data import RecordFactory
from .dataset import TIMESTAMP_FIELD, Record, ResourceData, ResourceShape, Row
from .metadata import Schema, load_schema
from .odata_filter import Timestamp
from .plan import FeedPlan, build_plan, pad_key
from .responses import encode_json

CORE_RESOURCES = ("Property", "Member", "Office", "Media", "OpenHouse")
PARENT_FIELDS = {"Media": "ResourceRecordKey", "OpenHouse": "ListingKey"}
AUX_FIELDS = {"Property": "PhotosChangeTimestamp"}
# Listings move forward through their life cycle when mutated.
NEXT_STATUS = {
    "ComingSoon": "Active",
    "Active": "Pending",
    "ActiveUnderContract": "Pending",
    "Pending": "Closed",
    "Hold": "Active",
    "Expired": "Active",
    "Withdrawn": "Active",
    "Canceled": "Active",
    "Closed": "Closed",
}
PHOTO_CHANGE_SHARE = 1 / 3


class Feed:
    def __init__(self, config: SimulatorConfig) -> None:
        self.schema: Schema = load_schema(config.metadata_path)
        missing = [name for name in CORE_RESOURCES if name not in self.schema.entity_sets]
        if missing:
            raise ValueError(f"metadata declares no entity set for {', '.join(missing)}")
        property_fields = self.schema.entity_type_of("Property").properties
        self.suppressed = config.effective_suppressed_fields()
        undeclared = sorted(self.suppressed - set(property_fields))
        if undeclared:
            raise ValueError(f"suppressed fields not declared on Property: {undeclared}")
        key_widths = {
            name: self._key_width(name) if config.fill == "max" else None for name in CORE_RESOURCES
        }
        self.plan: FeedPlan = build_plan(
            config.seed, config.records, key_widths, config.key_seed, config.media_max_per_listing
        )
        self._compact = config.compact_index
        self.factory = RecordFactory(self.schema, self.plan, config.fill, self.suppressed)
        self._lock = threading.RLock()
        self._listing_ordinals = {key: i for i, key in enumerate(self.plan.property_keys)}
        self.resources: dict[str, ResourceData] = {
            name: self._resource(name) for name in self.schema.entity_sets
        }

    # -- construction

    def _key_width(self, resource: str) -> int | None:
        entity = self.schema.entity_type_of(resource)
        return entity.properties[entity.key[0]].max_length if entity.key else None

    def shape(self, resource: str) -> ResourceShape:
        entity = self.schema.entity_type_of(resource)
        declared = entity.properties
        parent = PARENT_FIELDS.get(resource)
        aux = AUX_FIELDS.get(resource)
        return ResourceShape(
            name=resource,
            key_field=entity.key[0] if entity.key else next(iter(declared), ""),
            parent_field=parent if parent in declared else None,
            aux_field=aux if aux in declared else None,
            has_timestamp=TIMESTAMP_FIELD in declared,
        )

    def _resource(self, name: str) -> ResourceData:
        shape = self.shape(name)
        plan, factory = self.plan, self.factory
        if self._compact and name == "Property":
            return self._compact_property(shape)
        if self._compact and name == "Media":
            return self._compact_media(shape)
        if name == "Property":
            return ResourceData(
                shape,
                factory.property,
                lambda: (self._property_row(i) for i in range(len(plan.property_keys))),
            )
        if name == "Member":
            return ResourceData(
                shape,
                factory.member,
                lambda: (
                    Row(key, _stamp(plan.member_ticks[i]), i)
                    for i, key in enumerate(plan.member_keys)
                ),
            )
        if name == "Office":
            return ResourceData(
                shape,
                factory.office,
                lambda: (
                    Row(key, _stamp(plan.office_ticks[i]), i)
                    for i, key in enumerate(plan.office_keys)
                ),
            )
        if name == "Media":
            return ResourceData(shape, lambda o: factory.media(*o), self._media_rows)
        if name == "OpenHouse":
            return ResourceData(
                shape,
                factory.open_house,
                lambda: (
                    Row(
                        key,
                        _stamp(plan.open_house_ticks[i]),
                        i,
                        parent=plan.property_keys[plan.open_houses[i][0]],
                    )
                    for i, key in enumerate(plan.open_house_keys)
                ),
            )
        # Declared in metadata but not generated (DataSystem, Enumeration…): served empty.
        return ResourceData(shape, None, list)

    def _property_row(self, listing: int, _: int = 0) -> Row:
        plan = self.plan
        return Row(
            plan.property_keys[listing],
            _stamp(plan.property_ticks[listing]),
            listing,
            aux=_optional_stamp(plan.photo_ticks[listing]),
        )

    def _compact_property(self, shape: ResourceShape) -> ResourceData:
        keys, ticks = self.plan.property_keys, self.plan.property_ticks
        by_key = sorted(range(len(keys)), key=keys.__getitem__)
        by_time = sorted(by_key, key=ticks.__getitem__)  # stable: the key breaks ties

        def find(key: str) -> Row | None:
            listing = self._listing_ordinals.get(key)
            return None if listing is None else self._property_row(listing)

        return CompactResourceData(
            shape,
            self.factory.property,
            lambda: (self._property_row(i) for i in range(len(keys))),
            by_key=GroupOrder(by_key),
            by_time=GroupOrder(by_time),
            row_at=self._property_row,
            find=find,
        )

    def _media_row(self, listing: int, sequence: int) -> Row:
        plan = self.plan
        return Row(
            plan.media_key(listing, sequence),
            _stamp(plan.photo_ticks[listing] or 0),
            (listing, sequence),
            plan.property_keys[listing],
        )

    def _compact_media(self, shape: ResourceShape) -> ResourceData:
        # A listing's photos are a group: one timestamp, keys "<listing key[:16]>mNN" in
        # sequence order, so both orders are orders of listings.
        plan = self.plan
        counts, photo_ticks = plan.media_counts, plan.photo_ticks
        with_media = [listing for listing, count in enumerate(counts) if count]
        by_key = sorted(with_media, key=lambda listing: plan.media_key(listing, 0))
        by_time = sorted(by_key, key=lambda listing: photo_ticks[listing] or 0)
        property_width = plan.key_widths.get("Property")

        def find(key: str) -> Row | None:
            sequence = key[17:19]
            if key[16:17] != "m" or not sequence.isdigit():
                return None
            listing = self._listing_ordinals.get(pad_key(key[:16], property_width))
            if listing is None or int(sequence) >= counts[listing]:
                return None
            row = self._media_row(listing, int(sequence))
            return row if row.key == key else None

        def children_of(parent: str) -> list[Row]:
            listing = self._listing_ordinals.get(parent)
            if listing is None:
                return []
            return [self._media_row(listing, sequence) for sequence in range(counts[listing])]

        return CompactResourceData(
            shape,
            lambda o: self.factory.media(*o),
            self._media_rows,
            by_key=GroupOrder(by_key, counts),
            by_time=GroupOrder(by_time, counts),
            row_at=self._media_row,
            find=find,
            children_of=children_of,
        )

    def _media_rows(self) -> Iterable[Row]:
        plan = self.plan
        for listing, count in enumerate(plan.media_counts):
            if not count:
                continue
            stamp = _stamp(plan.photo_ticks[listing] or 0)  # one instant for a listing's set
            parent = plan.property_keys[listing]
            for sequence in range(count):
                yield Row(plan.media_key(listing, sequence), stamp, (listing, sequence), parent)

    def warm_up(self) -> None:
        """Build every index now (seconds at 100k listings) instead of in a first request."""
        for data in self.resources.values():
            data.views()
            if data.shape.parent_field:
                data.children("")

    def prerender(self, resource: str = "Property") -> None:
        """Generate and keep every record of `resource` now (see SimulatorConfig.prerender;
        Media, at a dozen rows a listing, would take many times the memory)."""
        data = self.resources[resource]
        data.keep_all_records = True
        for row in data.views()[0]:
            data.keep_encoded(row, encode_json)

    # -- reading

    def data(self, resource: str) -> ResourceData:
        return self.resources[resource]

    def records(self, resource: str) -> list[Record]:
        """Every current record in key order (copies)."""
        data = self.resources[resource]
        by_key, _ = data.views()
        return [dict(data.record(row)) for row in by_key]

    # -- writing

    def next_stamp(self, resource: str) -> Timestamp:
        """Now, but strictly later than every timestamp already in the resource."""
        ticks = max(now_ticks(), self.resources[resource].max_ticks() + 1)
        return Timestamp(ticks, format_ticks(ticks))

    def upsert(self, resource: str, records: list[Any]) -> list[str]:
        """Insert or merge records; ModificationTimestamp = now unless the record has one."""
        data = self.resources[resource]
        declared = self.schema.entity_type_of(resource).properties
        key_field = data.shape.key_field
        with self._lock:
            stamp = self.next_stamp(resource)
            merged: list[Record] = []
            for record in records:
                if not isinstance(record, dict) or not isinstance(record.get(key_field), str):
                    raise ValueError(f"each record must be an object with a string {key_field}")
                unknown = sorted(set(record) - set(declared))
                if unknown:
                    raise ValueError(f"fields not in metadata: {', '.join(unknown)}")
                existing = data.get(record[key_field])
                base = dict(data.record(existing)) if existing else dict.fromkeys(declared)
                base.update(record)
                if TIMESTAMP_FIELD in declared and TIMESTAMP_FIELD not in record:
                    base[TIMESTAMP_FIELD] = stamp.text
                if resource == "Property":
                    base.update(dict.fromkeys(self.suppressed))
                merged.append(base)
            data.put(merged)
        return [record[key_field] for record in merged]

    def delete(self, resource: str, keys: Iterable[str]) -> list[str]:
        """Records leave the feed; a listing takes its Media and OpenHouse rows with it."""
        with self._lock:
            removed = self.resources[resource].remove(list(keys))
            if resource == "Property":
                for child in ("Media", "OpenHouse"):
                    data = self.resources[child]
                    if data.shape.parent_field:
                        orphans = [row.key for key in removed for row in data.children(key)]
                        data.remove(orphans)
        return removed

    def mutate(self, resource: str, count: int, seed: int, delete: int = 0) -> dict[str, list[str]]:
        """Change `count` records and remove `delete` others, chosen by `seed`."""
        data = self.resources[resource]
        rng = random.Random(f"{seed}:mutate:{resource}")
        with self._lock:
            by_key, _ = data.views()
            keys = [row.key for row in by_key]
            chosen = rng.sample(keys, min(count + delete, len(keys)))
            to_change, to_delete = chosen[:count], chosen[count:]
            stamp = self.next_stamp(resource)
            rows = data.rows()
            changed = [
                self._changed(resource, data.record(rows[key]), stamp, rng) for key in to_change
            ]
            data.put(changed)
            deleted = self.delete(resource, to_delete)
        return {"modified": to_change, "deleted": deleted}

    def _changed(
        self, resource: str, record: Record, stamp: Timestamp, rng: random.Random
    ) -> Record:
        new = dict(record)
        if TIMESTAMP_FIELD in new:
            new[TIMESTAMP_FIELD] = stamp.text
        if resource == "Property":
            self._change_listing(new, stamp, rng)
        else:
            for field, value in (
                ("MemberStatus", "Inactive"),
                ("OfficeStatus", "Inactive"),
                ("OpenHouseStatus", "Canceled"),
            ):
                if field in new:
                    new[field] = value if new[field] != value else "Active"
            if "ShortDescription" in new:
                new["ShortDescription"] = f"Updated {stamp.text[:10]}"
        return new

    def _change_listing(self, listing: Record, stamp: Timestamp, rng: random.Random) -> None:
        price = listing.get("ListPrice")
        if isinstance(price, int | float) and not isinstance(price, bool):
            listing["ListPrice"] = round(price * rng.uniform(0.9, 0.99), 2)
            if "PriceChangeTimestamp" in listing:
                listing["PriceChangeTimestamp"] = stamp.text
        status = listing.get("StandardStatus")
        enum = (
            self.schema.enum_of(self.schema.entity_type_of("Property").properties["StandardStatus"])
            if "StandardStatus" in listing
            else None
        )
        following = NEXT_STATUS.get(str(status))
        if enum is not None and following in {member.name for member in enum.members}:
            listing["StandardStatus"] = following
            if "StatusChangeTimestamp" in listing:
                listing["StatusChangeTimestamp"] = stamp.text
        ordinal = self._listing_ordinals.get(listing.get("ListingKey", ""))
        if ordinal is not None and rng.random() < PHOTO_CHANGE_SHARE:
            count = self._replace_media(ordinal, stamp, rng)
            if "PhotosCount" in listing:
                listing["PhotosCount"] = count
            if "PhotosChangeTimestamp" in listing:
                listing["PhotosChangeTimestamp"] = stamp.text

    def _replace_media(self, listing: int, stamp: Timestamp, rng: random.Random) -> int:
        """New photo set: some rows changed, some added, some dropped. Returns the count."""
        media = self.resources["Media"]
        if not media.shape.parent_field:
            return 0
        listing_key = self.plan.property_keys[listing]
        old = [row.key for row in media.children(listing_key)]
        count = max(0, min(20, len(old) + rng.randint(-3, 3)))
        variant = stamp.ticks % 1_000_000
        media_stamp = self.next_stamp("Media")
        new = [
            self.factory.media_at(listing, sequence, media_stamp.ticks, variant)
            for sequence in range(count)
        ]
        key_field = media.shape.key_field
        media.put(new)
        media.remove(set(old) - {record[key_field] for record in new})
        return count


def _stamp(ticks: int) -> Timestamp:
    return Timestamp(ticks, format_ticks(ticks))


def _optional_stamp(ticks: int | None) -> Timestamp | None:
    return None if ticks is None else _stamp(ticks)
