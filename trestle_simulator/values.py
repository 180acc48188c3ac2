"""Values that fit a declared property: its type, MaxLength, Precision and Scale.

Two jobs. `conform` turns a value the generator meant for a field (a city, a price) into
one that fits whatever the served metadata declares for that field, so realistic data
stays valid against any EDMX file. `ValuePool` supplies values for fields the generator
has no special knowledge of: a small per-field pool drawn once from the seed, so wide
records (588 fields) cost one byte of randomness per field instead of a generator call.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any

from .clock import HISTORY_END_TICKS, HISTORY_START_TICKS, format_date, format_ticks
from .metadata import EnumType, PropertyDef
from .vocabulary import GENERIC_WORDS, MAX_FILLER

JSON = Any

# Strings declared without MaxLength have no limit; fill="max" uses this many characters.
UNBOUNDED_MAX_FILL = 2000
UNBOUNDED_REALISTIC = 120
INT_RANGES = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}
DECIMAL_DEFAULT = (18, 2)  # Precision/Scale assumed when the document leaves them out
POOL_SIZE = 16  # a power of two: a random byte picks a slot with a mask
REALISTIC_PRESENT = 0.4  # share of a generic field's values that are not null


def filled_text(prefix: str, length: int) -> str:
    """`prefix` followed by filler, exactly `length` characters."""
    if length <= 0:
        return ""
    text = prefix + MAX_FILLER * (length // len(MAX_FILLER) + 1)
    return text[:length]


def string_limit(prop: PropertyDef, fill: str) -> int:
    if prop.max_length is not None:
        return prop.max_length
    return UNBOUNDED_MAX_FILL if fill == "max" else UNBOUNDED_REALISTIC


def integer_bounds(prop: PropertyDef) -> tuple[int, int]:
    """The type's range, narrowed by Precision (digits) when that is tighter."""
    low, high = INT_RANGES.get(prop.type, INT_RANGES["Edm.Int64"])
    if prop.precision is not None and prop.precision < 19:
        high = min(high, 10**prop.precision - 1)
        low = max(low, -(10**prop.precision - 1))
    return low, high


def decimal_shape(prop: PropertyDef) -> tuple[int, int]:
    precision = prop.precision or DECIMAL_DEFAULT[0]
    scale = prop.scale if prop.scale is not None else DECIMAL_DEFAULT[1]
    return precision, min(scale, precision)


def max_decimal(precision: int, scale: int) -> float:
    """The largest value with these digits that survives JSON as a float exactly.

    Precision 16 and more can exceed what a double holds; step down until the shortest
    repr of the float is the decimal itself, so the client parses what we meant.
    """
    with localcontext(prec=max(precision, 28) + 2):
        step = Decimal(1).scaleb(-scale)
        value = Decimal(10) ** (precision - scale) - step
        for _ in range(1000):
            if Decimal(repr(float(value))) == value:
                return float(value)
            value -= step
    # Far beyond a double: settle for fifteen nines, which any JSON parser keeps exactly.
    return float(Decimal(10) ** min(precision - scale, 15) - 1)


Converter = Callable[[Any], Any]


def make_converter(prop: PropertyDef, enum: EnumType | None, fill: str) -> Converter:
    """A function fitting a generator's value to `prop`; it returns None when it cannot.

    Built once per field and reused for every record: wide records call it hundreds of
    times per row, so all the declaration lookups happen here, not per value.
    """
    if enum is not None:
        return _enum_converter(enum, fill)
    kind = prop.element_type
    if kind == "Edm.String":
        limit = string_limit(prop, fill)
        if fill == "max":
            return lambda value: None if value is None else filled_text(str(value), limit)
        return lambda value: None if value is None else str(value)[:limit]
    if kind in INT_RANGES:
        low, high = integer_bounds(prop)

        def to_int(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return high if fill == "max" else max(low, min(high, int(value)))

        return to_int
    if kind in ("Edm.Decimal", "Edm.Double", "Edm.Single"):
        precision, scale = decimal_shape(prop)
        widest = max_decimal(precision, scale)
        limit = 10 ** (precision - scale) - 10**-scale

        def to_decimal(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if fill == "max" and kind == "Edm.Decimal":
                return widest
            return round(max(-limit, min(limit, float(value))), scale)

        return to_decimal
    if kind == "Edm.Boolean":
        return lambda value: value if isinstance(value, bool) else None
    if kind in ("Edm.DateTimeOffset", "Edm.Date", "Edm.GeographyPoint"):
        return lambda value: value  # the generator already writes these in wire form
    return lambda value: None


def _enum_converter(enum: EnumType, fill: str) -> Converter:
    names = [member.name for member in enum.members]
    known = frozenset(names)
    if not names:
        return lambda value: None
    if fill == "max":
        widest = ",".join(names) if enum.is_flags else max(names, key=len)
        return lambda value: widest
    if enum.is_flags:

        def to_flags(value: Any) -> Any:
            if not isinstance(value, str):
                return None
            chosen = [part for part in value.split(",") if part in known]
            return ",".join(chosen) if chosen else None

        return to_flags
    return lambda value: value if value in known else None


class ValuePool:
    """Per-field pools of plausible values for fields without a dedicated generator."""

    def __init__(self, seed: int, resource: str, fill: str) -> None:
        self._seed = seed
        self._resource = resource
        self._fill = fill

    def pool(self, prop: PropertyDef, enum: EnumType | None) -> list[Any]:
        """POOL_SIZE slots; in realistic mode most are None (sparse, like real feeds)."""
        rng = random.Random(f"{self._seed}:{self._resource}:{prop.name}")
        if self._fill == "max":
            return [max_value(prop, enum, rng)] * POOL_SIZE
        present = round(POOL_SIZE * REALISTIC_PRESENT)
        values: list[Any] = [generic_value(prop, enum, rng) for _ in range(present)]
        values += [None] * (POOL_SIZE - present)
        rng.shuffle(values)
        return values


def max_value(prop: PropertyDef, enum: EnumType | None, rng: random.Random) -> Any:
    """The widest value the declaration allows."""
    if enum is not None:
        return _enum_converter(enum, "max")("")
    kind = prop.element_type
    if prop.is_collection:
        return [max_value(PropertyDef(prop.name, kind, max_length=prop.max_length), None, rng)]
    if kind == "Edm.String":
        return filled_text("", string_limit(prop, "max"))
    return generic_value(prop, None, rng, widest=True)


def generic_value(
    prop: PropertyDef, enum: EnumType | None, rng: random.Random, widest: bool = False
) -> Any:
    """A plausible value of the declared type, knowing nothing about the field's meaning."""
    if enum is not None:
        names = [member.name for member in enum.members]
        if not names:
            return None
        if enum.is_flags:
            return ",".join(sorted(rng.sample(names, rng.randint(1, min(4, len(names))))))
        return rng.choice(names)
    kind = prop.element_type
    if prop.is_collection:
        element = PropertyDef(prop.name, kind, max_length=prop.max_length)
        return [generic_value(element, None, rng) for _ in range(rng.randint(0, 3))]
    if kind == "Edm.String":
        return _generic_text(prop, rng)
    if kind in INT_RANGES:
        low, high = integer_bounds(prop)
        return high if widest else rng.randint(max(low, 0), min(high, 5000))
    if kind in ("Edm.Decimal", "Edm.Double", "Edm.Single"):
        precision, scale = decimal_shape(prop)
        if widest:
            return max_decimal(precision, scale)
        top = min(10 ** (precision - scale) - 1, 100_000)
        return round(rng.uniform(0, top), scale)
    if kind == "Edm.Boolean":
        return True if widest else rng.random() < 0.5
    if kind == "Edm.Date":
        return format_date(rng.randrange(HISTORY_START_TICKS, HISTORY_END_TICKS))
    if kind == "Edm.DateTimeOffset":
        return format_ticks(rng.randrange(HISTORY_START_TICKS, HISTORY_END_TICKS))
    if kind == "Edm.TimeOfDay":
        return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00.0000000"
    if kind == "Edm.Duration":
        return f"PT{rng.randint(1, 48)}H"
    if kind == "Edm.Guid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if kind == "Edm.Binary":
        return base64.b64encode(rng.randbytes(12)).decode()
    if kind == "Edm.GeographyPoint":
        return geography_point(rng.uniform(25, 48), rng.uniform(-123, -70))
    return None  # Edm.Stream, complex types: nothing sensible to put inline


def _generic_text(prop: PropertyDef, rng: random.Random) -> str:
    limit = string_limit(prop, "realistic")
    name = prop.name
    if "Phone" in name or "Fax" in name:
        text = f"{rng.randint(201, 989)}-555-{rng.randint(0, 9999):04d}"
    elif "Email" in name:
        text = f"agent{rng.randint(1, 9999)}@example.com"
    elif "URL" in name or "Url" in name:
        text = f"https://www.example.com/{name.lower()}/{rng.randint(1, 99999)}"
    elif limit <= 10:
        text = str(rng.randint(0, 10**limit - 1))
    else:
        words = rng.randint(1, max(1, min(12, limit // 8)))
        text = " ".join(rng.choice(GENERIC_WORDS) for _ in range(words)).capitalize()
    return text[:limit]


def geography_point(latitude: float, longitude: float) -> dict[str, Any]:
    """An Edm.GeographyPoint in OData JSON (GeoJSON with the CRS OData requires)."""
    return {
        "type": "Point",
        "coordinates": [round(longitude, 6), round(latitude, 6)],
        "crs": {"type": "name", "properties": {"name": "EPSG:4326"}},
    }
