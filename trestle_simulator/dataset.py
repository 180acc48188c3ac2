"""The live rows of one resource: a light index in memory, full records on demand.

Each row keeps only what ordering and the common filters need (key, ModificationTimestamp,
the parent key of a child resource, Property's PhotosChangeTimestamp). The full record of
a generated row is rebuilt from the seed when a page needs it, through a bounded cache;
rows changed through the control API hold their full record. That keeps start-up of
100,000 listings (and ~800,000 Media rows) to seconds and memory modest.

The data is live, not snapshotted: every request sees the current rows, which is what
makes $skip paging drift when records change mid-walk, as it does on Trestle.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .odata_filter import Timestamp, parse_timestamp

Record = dict[str, Any]
TIMESTAMP_FIELD = "ModificationTimestamp"
RECORD_CACHE_SIZE = 20_000
MATCH_CACHE_SIZE = 16


@dataclass(frozen=True)
class ResourceShape:
    """The fields of a resource the index holds, beyond its key."""

    name: str
    key_field: str
    parent_field: str | None = None  # Media.ResourceRecordKey, OpenHouse.ListingKey
    aux_field: str | None = None  # Property.PhotosChangeTimestamp (media refresh queries)
    has_timestamp: bool = True

    @property
    def light_fields(self) -> frozenset[str]:
        names = {self.key_field}
        if self.has_timestamp:
            names.add(TIMESTAMP_FIELD)
        if self.parent_field:
            names.add(self.parent_field)
        if self.aux_field:
            names.add(self.aux_field)
        return frozenset(names)


class Row:
    """One record in the index. `source` is an ordinal for a generated record, or the
    stored record itself once the record was written through the control API."""

    __slots__ = ("aux", "key", "parent", "source", "stamp")

    def __init__(
        self,
        key: str,
        stamp: Timestamp | None,
        source: Any,
        parent: str | None = None,
        aux: Timestamp | None = None,
    ) -> None:
        self.key = key
        self.stamp = stamp
        self.source = source
        self.parent = parent
        self.aux = aux

    @property
    def ticks(self) -> int:
        return self.stamp.ticks if self.stamp is not None else -1


def stamp_of(value: Any) -> Timestamp | None:
    """A record's timestamp text as a Timestamp; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


class ResourceData:
    """All rows of one resource, with sorted views and caches rebuilt per version."""

    def __init__(
        self,
        shape: ResourceShape,
        generate: Callable[[Any], Record] | None,
        load: Callable[[], Iterable[Row]],
    ) -> None:
        self.shape = shape
        self._generate = generate
        self._load = load
        self._lock = threading.RLock()
        self._rows: dict[str, Row] | None = None
        self.version = 0
        self._views: tuple[int, Sequence[Row], Sequence[Row]] | None = None
        self._children: dict[str, list[str]] | None = None
        self._records: OrderedDict[Any, Record] = OrderedDict()
        self.keep_all_records = False
        # Generated records' JSON, kept by `prerender` (see `served`).
        self._encoded: dict[Any, msgspec.Raw] = {}
        self._matches: OrderedDict[tuple[Any, ...], list[Row]] = OrderedDict()

    # -- reading

    def rows(self) -> dict[str, Row]:
        """Key -> row; generated on first use (Media of 100k listings only when asked)."""
        rows = self._rows
        if rows is None:
            with self._lock:
                if self._rows is None:
                    self._rows = {row.key: row for row in self._load()}
                rows = self._rows
        return rows

    def __len__(self) -> int:
        return len(self.rows())

    def get(self, key: str) -> Row | None:
        return self.rows().get(key)

    def views(self) -> tuple[Sequence[Row], Sequence[Row]]:
        """(rows by key, rows by (ModificationTimestamp, key)), for the current version."""
        views = self._views
        if views is None or views[0] != self.version:
            with self._lock:
                views = self._views
                if views is None or views[0] != self.version:
                    by_key = sorted(self.rows().values(), key=lambda row: row.key)
                    by_time = sorted(by_key, key=lambda row: row.ticks)  # stable: key breaks ties
                    views = (self.version, by_key, by_time)
                    self._views = views
        return views[1], views[2]

    def light(self, row: Row) -> Record:
        """The row's indexed fields as a record, enough to evaluate filters on them."""
        shape = self.shape
        light: Record = {shape.key_field: row.key}
        if shape.has_timestamp:
            light[TIMESTAMP_FIELD] = row.stamp
        if shape.parent_field:
            light[shape.parent_field] = row.parent
        if shape.aux_field:
            light[shape.aux_field] = row.aux
        return light

    def record(self, row: Row) -> Record:
        """The full record. Callers must not modify it (it may be cached and shared)."""
        source = row.source
        if isinstance(source, dict):
            return source
        if self._generate is None:
            raise LookupError(f"{self.shape.name} row {row.key} has no record")
        cached = self._records.get(source)
        if cached is not None:
            return cached
        record = self._generate(source)
        with self._lock:
            self._records[source] = record
            if self.keep_all_records is False and len(self._records) > RECORD_CACHE_SIZE:
                self._records.popitem(last=False)
        return record

    def keep_encoded(self, row: Row, encode: Callable[[Record], bytes]) -> None:
        """Keep the generated record's JSON, to be served as it is (`served`)."""
        if not isinstance(row.source, dict):
            self._encoded[row.source] = msgspec.Raw(encode(self.record(row)))

    def served(self, row: Row) -> Record | msgspec.Raw:
        """The record for a page that serves it whole: its JSON when prerendered (the same
        bytes the encoder writes for the record; a page of 1,000 wide records is 19 MB to
        encode, 40 ms of CPU that benchmarks count beside the client's), else the record.
        A generated record never changes; a written one has a dict source, never kept."""
        encoded = self._encoded.get(row.source) if not isinstance(row.source, dict) else None
        return encoded if encoded is not None else self.record(row)

    def children(self, parent: str) -> list[Row]:
        """Rows whose parent field is `parent` (Media of a listing), any order."""
        index = self._children
        if index is None:
            with self._lock:
                if self._children is None:
                    built: dict[str, list[str]] = {}
                    for row in self.rows().values():
                        if row.parent is not None:
                            built.setdefault(row.parent, []).append(row.key)
                    self._children = built
                index = self._children
        rows = self.rows()
        return [rows[key] for key in index.get(parent, ()) if key in rows]

    def max_ticks(self) -> int:
        _, by_time = self.views()
        return by_time[-1].ticks if by_time else -1

    def cached_matches(self, signature: tuple[Any, ...]) -> list[Row] | None:
        return self._matches.get((self.version, *signature))

    def remember_matches(self, signature: tuple[Any, ...], rows: list[Row]) -> None:
        with self._lock:
            self._matches[(self.version, *signature)] = rows
            while len(self._matches) > MATCH_CACHE_SIZE:
                self._matches.popitem(last=False)

    # -- writing (control API); every change makes a new version

    def row_for_record(self, record: Record) -> Row:
        shape = self.shape
        return Row(
            key=str(record[shape.key_field]),
            stamp=stamp_of(record.get(TIMESTAMP_FIELD)),
            source=record,
            parent=record.get(shape.parent_field) if shape.parent_field else None,
            aux=stamp_of(record.get(shape.aux_field)) if shape.aux_field else None,
        )

    def put(self, records: Iterable[Record]) -> None:
        with self._lock:
            rows = self.rows()
            for record in records:
                row = self.row_for_record(record)
                previous = rows.get(row.key)
                rows[row.key] = row
                self._reindex_child(previous, row)
            self._changed()

    def remove(self, keys: Iterable[str]) -> list[str]:
        removed = []
        with self._lock:
            rows = self.rows()
            for key in keys:
                row = rows.pop(key, None)
                if row is not None:
                    removed.append(key)
                    self._reindex_child(row, None)
            self._changed()
        return removed

    def _reindex_child(self, old: Row | None, new: Row | None) -> None:
        if self._children is None:
            return  # built lazily from the rows when first needed
        if old is not None and old.parent is not None and (new is None or new.parent != old.parent):
            siblings = self._children.get(old.parent, [])
            if old.key in siblings:
                siblings.remove(old.key)
        if new is not None and new.parent is not None:
            siblings = self._children.setdefault(new.parent, [])
            if new.key not in siblings:
                siblings.append(new.key)

    def _changed(self) -> None:
        self.version += 1
        self._matches.clear()
