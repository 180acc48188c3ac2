"""Compact documents: a record is stored without its null members, and the sequence of its
keys (its shape) is stored once, in etl_record_shape, so export restores it exactly.

A Trestle record carries every field of its resource, set or not: at real width (600
fields) about 300 of them are null, 40 % of the document's bytes, and writing, logging and
double-writing those bytes was most of the database's work in a first load (bench.
window_profile --fields wide: 0.45 against 0.25 database CPU-s per 1,000 records).

The shape is the list of the record's keys in the order they came, named by a 128-bit
BLAKE2b digest of its JSON: the same list always has the same name, so any number of
workers can record a shape at once (insert if absent) and nothing needs coordinating.
Restoring puts back a null for every key of the shape the document lacks, in the shape's
order, so the record comes back exactly as received — key order and nulls included.

Everything here comes from the feed, so it is bounded: a record whose keys are not all
strings, or too many or too long, or that would be one shape too many for this process
(a feed sending ever-new key sets), is stored whole, as before, with no shape. Nothing is
ever lost by that; it only costs bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_
from typing import Any

from trestle_tasks.store.jsontext import decode_json, encode_json, encode_plain

SHAPE_CHARS = 32  # hex digits of the 128-bit digest
MAX_SHAPE_KEYS = 4096
MAX_SHAPE_BYTES = 256 * 1024
# Distinct key sequences one transformer remembers (a feed has a handful: one a resource
# and $select); later ones are stored whole. With MAX_SHAPE_KEYS, at most ~40 MB of keys.
MAX_SHAPES = 128
TRIAL_RECORDS = 1000  # records that decide whether leaving nulls out pays (ShapeBook)
MIN_NULL_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Shape:
    id: str
    names: str  # JSON array of the keys, in the record's order
    ordered: bool = False  # the keys come in the book's field order (ShapeBook)


_WHOLE = Shape(id="", names="[]")  # a key sequence that cannot have a shape


def shape_of_names(names_json: bytes) -> str:
    return hashlib.blake2b(names_json, digest_size=SHAPE_CHARS // 2).hexdigest()


class ShapeBook:
    """The shapes one transformer has met, keyed by the record's key sequence.

    Leaving nulls out costs the worker a pass over the record (15 µs at 122 fields, 40 at
    588) and saves the database their bytes: worth it when nulls are many (Trestle's
    wide records: half the members), not when they are few (the default metadata: one in
    twelve, 5 % of the bytes). So the first `trial` records decide, for this book's life
    (a loader's, rebuilt by the next migrate): when fewer than `min_null_share` of their
    members were null, later records are stored whole.
    """

    def __init__(self, field_order: Sequence[str] = (), limit: int = MAX_SHAPES,
                 trial: int = TRIAL_RECORDS, min_null_share: float = MIN_NULL_SHARE) -> None:
        self._position = {name: i for i, name in enumerate(field_order)}
        self._limit = limit
        self._shapes: dict[tuple[Any, ...], Shape] = {}  # _WHOLE: cannot have one
        self._trial = trial
        self._min_null_share = min_null_share
        self._members = self._nulls = 0
        self.enabled = True

    def compact(self, record: dict[str, Any]) -> tuple[dict[str, Any], Shape | None]:
        """The record without its null members and its shape; the record itself and None
        when it has no nulls or cannot have a shape (or nulls are too few to pay)."""
        shape = self.shape_of(record)
        if shape is None:
            return record, None
        return {k: v for k, v in record.items() if v is not None}, shape

    def shape_of(self, record: dict[str, Any]) -> Shape | None:
        """The shape to store `record` under without its nulls; None to store it whole."""
        if not self.admits(record):
            return None
        return self.shape_for_keys(tuple(record))

    def admits(self, record: dict[str, Any]) -> bool:
        """Whether `record` is to be stored without its nulls, if its keys have a shape
        (`shape_for_keys`): leaving them out pays, and it has some."""
        if not self.enabled:
            return False
        if self._trial:
            self._tried(len(record), sum(map(is_, record.values(), repeat(None))))
        return None in record.values() and len(record) <= MAX_SHAPE_KEYS

    def shape_for_keys(self, keys: tuple[Any, ...]) -> Shape | None:
        """The shape of a key sequence, made once; None when it cannot have one."""
        if len(keys) > MAX_SHAPE_KEYS:
            return None
        # One lookup: a hit compares every key (the decoder makes new strings each page).
        seen = self._shapes.get(keys)
        if seen is not None:
            return None if seen is _WHOLE else seen
        if len(self._shapes) >= self._limit:
            return None
        shape = _new_shape(keys, self._in_order(keys))
        self._shapes[keys] = _WHOLE if shape is None else shape
        return shape

    def _in_order(self, keys: tuple[Any, ...]) -> bool:
        position = self._position
        places = [position.get(k, -1) for k in keys]
        return -1 not in places and places == sorted(places)

    def _tried(self, members: int, nulls: int) -> None:
        self._members += members
        self._nulls += nulls
        self._trial -= 1
        if not self._trial and self._nulls < self._min_null_share * self._members:
            self.enabled = False


def _new_shape(keys: tuple[Any, ...], ordered: bool) -> Shape | None:
    if len(keys) > MAX_SHAPE_KEYS or not all(type(k) is str for k in keys):
        return None
    try:
        raw = encode_plain(list(keys))
    except UnicodeEncodeError:
        return None  # a lone surrogate in a key: the document's own checks reject it
    if len(raw) > MAX_SHAPE_BYTES or b"\\u0000" in raw:
        return None
    return Shape(id=shape_of_names(raw), names=raw.decode(), ordered=ordered)


class ShapeError(ValueError):
    """A stored document does not match its shape (the shape is missing or lacks a key)."""


def restore(document: str, names: list[str]) -> str:
    """The record as received: `document` with a null for every key of `names` it lacks,
    in the order of `names`."""
    record = decode_json(document)
    if not isinstance(record, dict):
        raise ShapeError("the stored document is not a JSON object")
    extra = set(record).difference(names)
    if extra:
        raise ShapeError(f"the stored document has keys its shape lacks: {sorted(extra)[:3]}")
    return encode_json({name: record.get(name) for name in names})


def names_of(text: str) -> list[str]:
    names = decode_json(text)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ShapeError("a stored shape is not a list of names")
    return names
