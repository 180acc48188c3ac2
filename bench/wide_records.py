"""Records with every field at its declared maximum, generated from resource specs.

Used by the store benchmark and the wide-row integration tests. Strings are filled to
their MaxLength with text that includes two-, three- and four-byte UTF-8 characters (so
utf8mb4 is exercised, not just ASCII); enumerations take their longest member, or all
members for multi-select ones; numbers take the most digits their type and facets allow;
timestamps carry seven fractional digits and an offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.edm.metadata import INTEGER_RANGES, FieldSpec, ResourceSpec

UNBOUNDED_STRING = 4000  # characters for strings declared without MaxLength
FILLER = "Wide row filler: café, naïve, 東京, 😀 emoji, quotes ' \" and back\\slash. "
BASE_TICKS = ODataTimestamp.parse("2024-02-29T12:34:56.1234567Z").ticks


def filled(length: int, prefix: str = "") -> str:
    text = prefix + FILLER * (length // len(FILLER) + 1)
    return text[:length]


def max_value(field: FieldSpec) -> Any:
    """The widest valid value for `field` (the key and timestamps are set per record)."""
    if field.enum is not None:
        members = list(field.enum.members) or ["Member"]
        if field.is_collection:
            return members
        if field.enum.is_flags:
            return ",".join(members)
        return max(members, key=len)
    kind = field.kind
    if field.is_collection:
        element = FieldSpec(field.name, field.type, field.kind, max_length=field.max_length,
                            precision=field.precision, scale=field.scale)
        return [max_value(element), max_value(element)]
    if kind == "string":
        return filled(field.max_length or UNBOUNDED_STRING)
    if kind == "integer":
        return INTEGER_RANGES.get(field.type, INTEGER_RANGES["Edm.Int64"])[1]
    if kind == "decimal":
        precision, scale = field.precision or 18, field.scale or 0
        whole = "9" * (precision - scale) or "0"
        return Decimal(f"-{whole}.{'9' * scale}" if scale else f"-{whole}")
    if kind == "float":
        return Decimal("-1.7976931348623157E+308")
    if kind == "boolean":
        return True
    if kind == "date":
        return "9999-12-31"
    if kind == "datetime":
        return "2024-02-29T07:34:56.1234567-05:00"
    if kind == "geography":
        return {"type": "Point", "coordinates": [Decimal("-122.4194155"),
                                                 Decimal("37.7749295")]}
    if kind == "guid":
        return "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    if kind in ("time", "duration"):
        return "23:59:59.9999999" if kind == "time" else "P1DT2H3M4.5S"
    return None  # streams and unknown types are not sent inline


def template(spec: ResourceSpec) -> dict[str, Any]:
    record = {}
    for field in spec.fields:
        value = max_value(field)
        if value is not None:
            record[field.name] = value
    return record


def wide_records(spec: ResourceSpec, count: int, *, start: int = 0,
                 key_prefix: str = "") -> Iterator[dict[str, Any]]:
    """`count` records; keys are filled to the key's MaxLength and end in the serial, so
    they are unique and sort in serial order. ModificationTimestamp moves 1 tick apart."""
    base = template(spec)
    key = spec.key_field
    version = spec.field("ModificationTimestamp")
    for serial in range(start, start + count):
        record = dict(base)
        if key.kind == "integer":
            record[key.name] = serial
        else:
            suffix = f"{key_prefix}{serial:012d}"
            width = min(key.max_length or 255, 255)
            record[key.name] = suffix.rjust(width, "K")[-width:]
        if version is not None and version.kind == "datetime":
            record[version.name] = ODataTimestamp(BASE_TICKS + serial).to_odata()
        yield record


def typical_records(spec: ResourceSpec, count: int, *, start: int = 0,
                    key_prefix: str = "") -> Iterator[dict[str, Any]]:
    """Records shaped like a real feed's: about one field in five present, strings of a
    few words. For comparing the write paths where per-statement cost, not bytes, rules."""
    keep = {spec.key_field.name, "ModificationTimestamp"}
    short = {f.name for f in spec.fields if f.kind == "string" and not f.is_collection} - keep
    for record in wide_records(spec, count, start=start, key_prefix=key_prefix):
        yield {
            name: value[:24] if name in short else value
            for index, (name, value) in enumerate(record.items())
            if name in keep or index % 5 == 0
        }
