"""Record JSON to row values, with validation; a bad record becomes a Rejection.

A record is loaded whole or not at all: any field with a value of the wrong type, an
unparseable date or timestamp, a string longer than its MaxLength, a number outside its
declared digits, or a character no target can store (U+0000; lone surrogates) rejects the
record, with the first such field and a reason. Records are never repaired: a repaired
record would be garbage that looks valid.

Forms stored in the typed columns (the document keeps the server's own forms):

- Edm.DateTimeOffset: UTC, truncated (never rounded) to microseconds; ModificationTimestamp
  additionally as exact 100 ns ticks in `etl_mod_ticks`.
- Edm.Decimal: Decimal, never through a float.
- Enumerations: the member name as sent (no PrettyEnums display values are invented).
  Multi-valued fields — IsFlags enumerations, which Trestle sends as one comma-separated
  string, and Collection(...) fields, sent as JSON arrays — become a JSON array text.
- GeographyPoint and complex values: their JSON text.

What is not checked, on purpose: membership of an enumeration value in the declared
members (lookups grow faster than `$metadata` is refreshed; rejecting would lose records),
and Nullable=false on fields other than the key (Trestle nulls suppressed fields).
Fields the metadata does not declare are kept in the document as they are and reported,
so schema tracking can record them.

Speed: a record takes a fast path first (see `FastPath`): msgspec checks the string,
integer and boolean fields at C speed, a few Python checks cover the rest, and the
document is written by msgspec. The fast path only ever says "valid, and here is the row"
or "not sure": anything it does not accept (a bad record, a float, a tuple, an unusual
timestamp form) goes through the checks above, which alone decide rejections and their
reasons, so both paths give the same row for the same record.
"""

from __future__ import annotations

import decimal
import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, final

import msgspec

from trestle_tasks.core.timestamps import ODataTimestamp, common_timestamp_ticks
from trestle_tasks.edm.metadata import INTEGER_RANGES, FieldSpec
from trestle_tasks.store.jsontext import TooDeeplyNested, encode_json, encode_plain
from trestle_tasks.store.naming import (
    DELETED_COLUMN,
    LOADED_COLUMN,
    RECORD_COLUMN,
    SHAPE_COLUMN,
    VERSION_COLUMN,
)
from trestle_tasks.store.schema import ENUM_CHARS, UNBOUNDED_KEY_CHARS, ResourceLayout
from trestle_tasks.store.shapes import Shape, ShapeBook

# Reasons recorded in etl_rejects.reason
NOT_AN_OBJECT = "not_an_object"
MISSING_KEY = "missing_key"
WRONG_TYPE = "wrong_type"
TOO_LONG = "too_long"
OUT_OF_RANGE = "out_of_range"
INVALID_DATE = "invalid_date"
INVALID_TIMESTAMP = "invalid_timestamp"
INVALID_CHARACTER = "invalid_character"
UNSERIALIZABLE = "unserializable"
DATABASE_REFUSED = "database_refused"
TOO_DEEP = "too_deep"

Problem = tuple[str, str]  # (reason, detail)
Check = Callable[[Any], Problem | None]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Sentinel(enum.Enum):
    NOT_STRING = enum.auto()


_NOT_STRING: Final = _Sentinel.NOT_STRING  # an enum member, so `is not` narrows for mypy
# Instants Python (and so every target) can hold: 0001-01-01 to 9999-12-31, in UTC.
_MIN_TICKS = ODataTimestamp.from_datetime(datetime.min.replace(tzinfo=UTC)).ticks
_MAX_TICKS = ODataTimestamp.from_datetime(datetime.max.replace(tzinfo=UTC)).ticks + 9


@dataclass(frozen=True)
class Rejection:
    resource: str
    record_key: str | None
    field: str | None
    reason: str
    detail: str
    raw_record: Any


@final  # the loader tells a row from a Rejection by `type(outcome) is PreparedRow`
@dataclass(slots=True)
class PreparedRow:
    key: Any
    ticks: int | None  # ModificationTimestamp in ticks; None when absent
    values: dict[str, Any]  # column -> value, ready to bind
    size: int  # bytes of the document, to keep statements under the server's packet limit
    undeclared: tuple[str, ...]
    record: Any  # the record as received, for etl_rejects if the database refuses the row
    shape: Shape | None = None  # its key sequence, when its nulls were left out


def type_name(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", Decimal: "number",
            float: "number", list: "array", dict: "object"}.get(type(value),
                                                               type(value).__name__)


# --- checks, one per declared field, built once per resource --------------------------


def _check_string(limit: int | None) -> Check:
    def check(value: Any) -> Problem | None:
        if not isinstance(value, str):
            return WRONG_TYPE, f"expected a string, got {type_name(value)}"
        if limit is not None and len(value) > limit:
            return TOO_LONG, f"{len(value)} characters, MaxLength is {limit}"
        return None

    return check


def _check_integer(edm_type: str) -> Check:
    low, high = INTEGER_RANGES.get(edm_type, INTEGER_RANGES["Edm.Int64"])

    def check(value: Any) -> Problem | None:
        if type(value) is not int:
            return WRONG_TYPE, f"expected an integer, got {type_name(value)}"
        if not low <= value <= high:
            return OUT_OF_RANGE, f"{value} is outside {edm_type}"
        return None

    return check


def decimal_digits(value: Decimal) -> tuple[int, int]:
    """(digits before the point, digits after it), ignoring leading and trailing zeros."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    count = len(digits)
    if digits == (0,):
        return 0, 0
    fraction = -exponent if exponent < 0 else 0
    trailing = 0
    while trailing < min(fraction, count) and digits[count - 1 - trailing] == 0:
        trailing += 1
    fraction -= trailing
    whole = max(count + exponent, 0)
    return whole, fraction


def as_decimal(value: Any) -> Decimal:
    if type(value) is Decimal:
        return value
    if type(value) is float:
        return Decimal(repr(value))
    return Decimal(value)


def _check_decimal(precision: int | None, scale: int | None) -> Check:
    whole_limit = None if precision is None else precision - (scale or 0)

    def check(value: Any) -> Problem | None:
        kind = type(value)
        if kind is not Decimal and kind is not int and kind is not float:
            return WRONG_TYPE, f"expected a number, got {type_name(value)}"
        if kind is float and not math.isfinite(value):
            return OUT_OF_RANGE, f"{value} is not a finite number"
        number = as_decimal(value)
        if not number.is_finite():
            return OUT_OF_RANGE, f"{value} is not a finite number"
        whole, fraction = decimal_digits(number)
        if scale is not None and fraction > scale:
            return OUT_OF_RANGE, f"{value} has {fraction} decimals, Scale is {scale}"
        if whole_limit is not None and whole > whole_limit:
            return OUT_OF_RANGE, (
                f"{value} has {whole} integer digits, Precision {precision} Scale {scale or 0}"
                f" allows {whole_limit}"
            )
        return None

    return check


def _check_float(value: Any) -> Problem | None:
    kind = type(value)
    if kind is not Decimal and kind is not int and kind is not float:
        return WRONG_TYPE, f"expected a number, got {type_name(value)}"
    if not as_decimal(value).is_finite():
        return OUT_OF_RANGE, f"{value} is not a finite number"
    return None


def _check_boolean(value: Any) -> Problem | None:
    if type(value) is not bool:
        return WRONG_TYPE, f"expected true or false, got {type_name(value)}"
    return None


def _check_date(value: Any) -> Problem | None:
    if not isinstance(value, str):
        return WRONG_TYPE, f"expected a date string, got {type_name(value)}"
    if not _DATE.match(value):
        return INVALID_DATE, f"{value[:40]!r} is not YYYY-MM-DD"
    try:
        date.fromisoformat(value)
    except ValueError:
        return INVALID_DATE, f"{value!r} is not a calendar date"
    return None


def parse_timestamp(value: str) -> ODataTimestamp:
    """ODataTimestamp.parse, also refusing instants outside years 1-9999 in UTC."""
    try:
        stamp = ODataTimestamp.parse(value)
    except OverflowError:
        stamp = None
    if stamp is None or not _MIN_TICKS <= stamp.ticks <= _MAX_TICKS:
        raise ValueError(f"{value[:60]!r} is outside years 1-9999 in UTC")
    return stamp


def _check_datetime(value: Any) -> Problem | None:
    if not isinstance(value, str):
        return WRONG_TYPE, f"expected a timestamp string, got {type_name(value)}"
    try:
        parse_timestamp(value)
    except ValueError as exc:
        if "outside years" in str(exc):
            return OUT_OF_RANGE, str(exc)
        return INVALID_TIMESTAMP, f"{value[:60]!r} is not an ISO-8601 timestamp with an offset"
    return None


def _check_object(value: Any) -> Problem | None:
    if not isinstance(value, dict):
        return WRONG_TYPE, f"expected an object, got {type_name(value)}"
    return None


def _check_geography(value: Any) -> Problem | None:
    if not isinstance(value, dict):
        return WRONG_TYPE, f"expected a GeoJSON object, got {type_name(value)}"
    coordinates = value.get("coordinates")
    if not isinstance(value.get("type"), str) or not isinstance(coordinates, list):
        return WRONG_TYPE, "expected GeoJSON with type and coordinates"
    return None


def _accept(value: Any) -> Problem | None:
    return None


def _element_check(spec: FieldSpec) -> Check:
    kind = spec.kind
    if kind == "string":
        return _check_string(spec.max_length)
    if kind == "enum":
        return _check_string(ENUM_CHARS)
    if kind in ("guid", "time", "duration", "binary"):
        return _check_string(None)
    if kind == "integer":
        return _check_integer(spec.type)
    if kind == "decimal":
        return _check_decimal(spec.precision, spec.scale)
    if kind == "float":
        return _check_float
    if kind == "boolean":
        return _check_boolean
    if kind == "date":
        return _check_date
    if kind == "datetime":
        return _check_datetime
    if kind == "geography":
        return _check_geography
    if kind == "complex":
        return _check_object
    return _accept  # stream, unknown


def _list_of(element: Check, what: str) -> Check:
    def check(value: Any) -> Problem | None:
        if not isinstance(value, list):
            return WRONG_TYPE, f"expected {what}, got {type_name(value)}"
        for index, item in enumerate(value):
            if item is None:
                continue
            problem = element(item)
            if problem is not None:
                return problem[0], f"item {index}: {problem[1]}"
        return None

    return check


def field_check(spec: FieldSpec) -> Check:
    element = _element_check(spec)
    if spec.is_collection:
        return _list_of(element, "an array")
    if spec.enum is not None and spec.enum.is_flags:
        as_list = _list_of(element, "an array")

        def flags(value: Any) -> Problem | None:
            # Trestle: "A,B,C"; RESO DD 2.0 servers: ["A", "B", "C"]. Both are one form.
            if isinstance(value, str):
                return None
            if isinstance(value, list):
                return as_list(value)
            return WRONG_TYPE, f"expected a string or an array, got {type_name(value)}"

        return flags
    return element


# --- conversions to the typed columns (values are already validated) ----------------


def _multi_value_text(value: Any) -> str:
    if isinstance(value, str):
        return encode_json([part for part in value.split(",") if part] if value else [])
    return encode_json(value)


def field_converter(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.is_multi_valued or spec.kind in ("geography", "complex"):
        return _multi_value_text if spec.is_multi_valued else encode_json
    kind = spec.kind
    if kind == "decimal":
        return as_decimal
    if kind == "float":
        return float
    if kind == "date":
        return date.fromisoformat
    if kind == "datetime":
        return lambda value: parse_timestamp(value).to_datetime()
    if kind in ("stream", "unknown"):
        return lambda value: value if isinstance(value, str) else encode_json(value)
    return _identity


def _identity(value: Any) -> Any:
    return value


# --- the fast path: "surely valid" at C speed, or "not sure" -------------------------

_NONE_TYPE = type(None)
_INT_OR_NONE = frozenset((int, _NONE_TYPE))
_STR_OR_NONE = frozenset((str, _NONE_TYPE))
_ASCII_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def is_plain_json(value: Any) -> bool:
    """Only str, int, bool, None, finite Decimal, and lists and str-keyed dicts of them:
    values msgspec writes exactly as encode_json does (exact types: no subclasses)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is Decimal:
        return value.is_finite()
    if kind is list:
        return all(is_plain_json(item) for item in value)
    if kind is dict:
        return all(type(k) is str and is_plain_json(v) for k, v in value.items())
    return False


SureCheck = Callable[[Any], bool]  # True: valid and plain JSON; False: not sure


# quantize's context: no traps (an inexact or impossible result is a NaN, unequal to the
# value: not sure), and few digits, so a value like 1E+999999 on a field without Precision
# costs nothing to refuse.
_QUANTIZE = decimal.Context(prec=100, traps=[])


def _decimal_fits(precision: int | None, scale: int | None) -> SureCheck:
    whole_limit = None if precision is None else precision - (scale or 0)
    if whole_limit is not None and whole_limit < 0:
        return lambda value: False  # odd facets (Scale > Precision): the full check
    bound = None if whole_limit is None else 10 ** whole_limit
    step = None if scale is None else Decimal(1).scaleb(-scale)

    def fits(value: Any) -> bool:
        kind = type(value)
        if kind is int:
            return bound is None or -bound < value < bound
        if kind is not Decimal or not value.is_finite():
            return False  # floats, NaN, infinities and wrong types: the full check decides
        # adjusted() is the exponent of the leading digit: whole digits less one (a zero
        # with a positive exponent is refused here, and taken by the full check).
        if whole_limit is not None and value.adjusted() >= whole_limit:
            return False
        # Equal once rounded to Scale decimals: no more decimals than Scale but trailing
        # zeros, exactly what the full check allows. (as_tuple, 3x the cost, is not needed.)
        return step is None or value.quantize(step, context=_QUANTIZE) == value

    return fits


def _finite_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is Decimal and value.is_finite())


def _ascii_date(value: Any) -> bool:
    if type(value) is not str or _ASCII_DATE.match(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _checked_and_plain(check: Check) -> SureCheck:
    return lambda value: check(value) is None and is_plain_json(value)


def _shape_type(spec: FieldSpec) -> Any | None:
    """The msgspec type accepting only what `field_check(spec)` accepts, or None when the
    field is checked in Python (numbers, timestamps, arrays, objects)."""
    if spec.is_multi_valued:
        return None
    kind = spec.kind
    if kind == "integer":
        low, high = INTEGER_RANGES.get(spec.type, INTEGER_RANGES["Edm.Int64"])
        return Annotated[int, msgspec.Meta(ge=low, le=high)]
    if kind == "boolean":
        return bool
    if kind == "enum":
        return Annotated[str, msgspec.Meta(max_length=ENUM_CHARS)]
    if kind == "string" and spec.max_length is not None:
        return Annotated[str, msgspec.Meta(max_length=spec.max_length)]
    if kind in ("string", "guid", "time", "duration", "binary"):
        return str
    if kind == "date":
        # msgspec takes exactly YYYY-MM-DD, a real date, in ASCII digits (a subset of what
        # the full check takes) and writes the instance's date back as the same ten
        # characters: 1.5 µs a field in Python, a tenth of that here.
        return date
    return None


# msgspec refuses to rename a struct field to a name with `"`, `\` or a control
# character; a declared field named so (any feed may send one) would fail every sync of
# its resource when the fast path is built, so such a field is checked in Python instead.
_NOT_RENAMABLE = re.compile(r'["\\\x00-\x1f]')


def _renamable(name: str) -> bool:
    return _NOT_RENAMABLE.search(name) is None


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What a record's key sequence alone decides, worked out once per sequence: a feed
    sends the same few (one a resource and $select), each record's keys anew."""

    declared_only: bool  # every key a declared field: nothing undeclared to look at
    navigation: bool  # an expanded navigation property among them
    shape: Shape | None  # the sequence's shape, if a ShapeBook gave one (no navigation)


# Key sequences one FastPath remembers; records with others work theirs out each time.
MAX_KEY_SEQUENCES = 128


class FastPath:
    """The row for a record known valid, or None when unsure. Built once per layout.

    msgspec validates every string, integer and boolean field in one C call (unknown keys
    ignored); two C-level passes then make sure integers are exactly `int` and
    multi-select values exactly `str` (msgspec would also take an IntEnum or a tuple);
    decimals, timestamps and objects get short Python checks; and msgspec writes
    the document, which is why every value must be plain JSON.
    """

    def __init__(self, layout: ResourceLayout) -> None:
        spec = layout.spec
        self._declared = frozenset(f.name for f in spec.fields)
        self._navigation = spec.navigation_names
        # Every declared field (and navigation property) is a field of the shape, typed or
        # `Any`: msgspec looks a key up from where the last one was found, so keys in
        # declared order cost one comparison each, while a key the shape lacks costs a
        # scan of all its fields (15x the whole conversion at 588 fields).
        shaped: list[tuple[str, Any]] = []
        self._ints: tuple[str, ...] = ()
        self._flags: tuple[str, ...] = ()
        self._checks: list[tuple[str, SureCheck]] = []
        self._datetimes: list[str] = []
        for f in spec.fields:
            shape = _shape_type(f) if _renamable(f.name) else None
            if shape is not None:
                shaped.append((f.name, shape | None))
                if f.kind == "integer":
                    self._ints += (f.name,)
                continue
            if _renamable(f.name):
                shaped.append((f.name, Any))
            if f.enum is not None and f.enum.is_flags and not f.is_collection:
                self._flags += (f.name,)  # Trestle's "A,B,C"; an array takes the full check
            elif f.kind == "datetime" and not f.is_collection:
                self._datetimes.append(f.name)
            else:
                self._checks.append((f.name, self._sure_check(f)))
        declared = {name for name, _t in shaped}
        shaped += [(name, Any) for name in sorted(self._navigation)
                   if name not in declared and _renamable(name)]
        # omit_defaults: encoding an instance writes its non-null members only, in the
        # shape's order: a compact document without building a dict of them (`document`).
        self._shape = msgspec.defstruct(
            f"Shape{spec.name}", [(f"f{i}", t, None) for i, (_n, t) in enumerate(shaped)],
            kw_only=True, gc=False, omit_defaults=True,
            rename={f"f{i}": n for i, (n, _t) in enumerate(shaped)})
        self.field_order: tuple[str, ...] = tuple(name for name, _t in shaped)
        self._facts: dict[tuple[Any, ...], KeyFacts] = {}

    def key_facts(self, record: dict[str, Any], shapes: ShapeBook | None) -> KeyFacts:
        """The facts of `record`'s key sequence: one tuple and one lookup a record, where
        a set test for undeclared names, one for navigation properties and the shape's own
        lookup each went over its 600 keys."""
        keys = tuple(record)
        facts = self._facts.get(keys)
        if facts is None:
            navigation = bool(self._navigation) and not self._navigation.isdisjoint(keys)
            facts = KeyFacts(
                declared_only=self._declared.issuperset(keys), navigation=navigation,
                shape=None if shapes is None or navigation else shapes.shape_for_keys(keys))
            if len(self._facts) < MAX_KEY_SEQUENCES:
                self._facts[keys] = facts
        return facts

    @staticmethod
    def _sure_check(spec: FieldSpec) -> SureCheck:
        if not spec.is_collection:
            if spec.kind == "decimal":
                return _decimal_fits(spec.precision, spec.scale)
            if spec.kind == "float":
                return _finite_number
            if spec.kind == "date":
                return _ascii_date
        return _checked_and_plain(field_check(spec))

    def accepts(self, record: dict[str, Any]) -> Any | None:
        """The record as an instance of the shape when every declared field is valid and
        plain JSON (timestamps aside: see `stamps`); None when not sure."""
        try:
            shaped = msgspec.convert(record, self._shape)
        except (msgspec.ValidationError, UnicodeError):
            # UnicodeError: msgspec encodes a string it reports on (a lone surrogate in a
            # field of another type). Either way the full checks decide.
            return None
        get = record.get
        if not _INT_OR_NONE.issuperset(map(type, map(get, self._ints))):
            return None
        if not _STR_OR_NONE.issuperset(map(type, map(get, self._flags))):
            return None
        for name, sure in self._checks:
            value = get(name)
            if value is not None and not sure(value):
                return None
        return shaped

    def stamps(self, record: dict[str, Any]) -> dict[str, int] | None:
        """Ticks of every timestamp field present, or None if one is not in the common
        form (or not valid)."""
        found: dict[str, int] = {}
        get = record.get
        for name in self._datetimes:
            value = get(name)
            if value is None:
                continue
            ticks = common_timestamp_ticks(value)
            if ticks is None:
                return None
            found[name] = ticks
        return found

    def extras(self, record: dict[str, Any], known: set[str], facts: KeyFacts
               ) -> list[str] | None:
        """Undeclared names to report, in record order; None if one holds a value that is
        not plain JSON (navigation properties are left out of the document, unchecked)."""
        if facts.declared_only:
            return []
        undeclared: list[str] = []
        for name, value in record.items():
            if value is None or name in self._declared or name in self._navigation:
                continue  # (a null is never reported, as in the full checks)
            if not is_plain_json(value):
                return None
            if name not in known and "@" not in name:
                undeclared.append(name)
        return undeclared

    def document(self, record: dict[str, Any], shaped: Any, shapes: ShapeBook | None,
                 facts: KeyFacts) -> tuple[str, int, Shape | None] | None:
        """The document, its size in bytes and its shape (when `shapes` left its nulls
        out); None on U+0000 or a lone surrogate (the full path finds the field).
        `shaped` is the record as `accepts` made it; `facts`, its keys' (`key_facts`)."""
        shape = None
        if facts.navigation:
            navigation = self._navigation
            record = {k: v for k, v in record.items() if k not in navigation}
            shaped = None  # it holds the navigation properties the document leaves out
            if shapes is not None:
                shape = shapes.shape_of(record)
        elif shapes is not None and shapes.admits(record):
            shape = facts.shape
        document: Any = record
        if shape is not None:
            # Keys in the shape's field order: its instance writes exactly the non-null
            # members, in that order, as the dict without them would be.
            document = shaped if shaped is not None and shape.ordered else \
                {k: v for k, v in record.items() if v is not None}
        try:
            raw = encode_plain(document)
        except UnicodeEncodeError:
            return None
        if b"\\u0000" in raw:
            return None
        return raw.decode(), len(raw), shape


# --- the transformer ------------------------------------------------------------------


class RecordTransformer:
    """Validates records of one resource and turns them into rows for its table."""

    def __init__(self, layout: ResourceLayout, known_undeclared: Iterable[str] = ()) -> None:
        self.layout = layout
        spec = layout.spec
        self.resource = spec.name
        self._key = layout.key_field
        self._key_column = layout.key_column
        self._key_limit = self._key.max_length or UNBOUNDED_KEY_CHARS
        self._checks: dict[str, Check] = {f.name: field_check(f) for f in spec.fields}
        self._string_limits: dict[str, int | None] = {
            f.name: (ENUM_CHARS if f.kind == "enum" else f.max_length)
            for f in spec.fields
            if not f.is_multi_valued and (f.kind in ("string", "guid", "time", "duration",
                                                     "binary", "enum"))
        }
        self._navigation = spec.navigation_names
        self._known = set(known_undeclared)
        self._version = layout.version_field
        key_name = self._key.name
        self._typed: list[tuple[str, str, Callable[[Any], Any]]] = [
            (name, column, field_converter(spec.declared_field(name)))
            for name, column in layout.columns.items()
            if name != key_name
        ]
        self._retired = tuple(layout.retired.values())
        self._fast = FastPath(layout)
        self._shapes = ShapeBook(self._fast.field_order) if layout.shapes else None

    def note_known(self, names: Iterable[str]) -> None:
        """Undeclared names already tracked in etl_field_map: do not report them again."""
        self._known.update(names)

    def record_key(self, record: Any) -> str | None:
        if not isinstance(record, Mapping):
            return None
        key = record.get(self._key.name)
        return None if key is None else str(key)[:512]

    def prepare(self, record: Any, loaded_at: datetime) -> PreparedRow | Rejection:
        """The row for `record`, or why it is rejected."""
        try:
            if type(record) is dict:
                row = self._prepare_fast(record, loaded_at)
                if row is not None:
                    return row
            return self._prepare_checked(record, loaded_at)
        except RecursionError:
            # Nested deeper than the checks and encoders recurse (a value the client could
            # still decode): this record is rejected, never its whole batch.
            return self.reject(record, None, TOO_DEEP,
                               "nested too deeply to check or store")

    def _prepare_fast(self, record: dict[str, Any], loaded_at: datetime) -> PreparedRow | None:
        """The same row `_prepare_checked` makes, for a record the fast path is sure of."""
        fast = self._fast
        key = record.get(self._key.name)
        if self._key_problem(key) is not None:
            return None
        shaped = fast.accepts(record)
        if shaped is None:
            return None
        stamps = fast.stamps(record)
        if stamps is None:
            return None
        facts = fast.key_facts(record, self._shapes)
        undeclared = fast.extras(record, self._known, facts)
        if undeclared is None:
            return None
        encoded = fast.document(record, shaped, self._shapes, facts)
        if encoded is None:
            return None
        document, size, shape = encoded
        version = self._version
        ticks: int | None = None
        if version is not None and record.get(version) is not None:
            ticks = stamps.get(version)
            if ticks is None:
                return None  # a version field that is not a timestamp: let the full path say
        values = self._row_values(key, document, shape, ticks, loaded_at)
        for name, column, convert in self._typed:
            value = record.get(name)
            if value is None:
                values[column] = None
            elif name in stamps:  # parsed once, above
                values[column] = ODataTimestamp(stamps[name]).to_datetime()
            else:
                values[column] = convert(value)
        for column in self._retired:
            values[column] = None
        return PreparedRow(key=key, ticks=ticks, values=values, size=size,
                           undeclared=tuple(undeclared), record=record, shape=shape)

    def _prepare_checked(self, record: Any, loaded_at: datetime) -> PreparedRow | Rejection:
        """Every check, one field at a time: the authority on rejections and reasons."""
        if not isinstance(record, Mapping):
            return self.reject(record, None, NOT_AN_OBJECT,
                                f"expected a JSON object, got {type_name(record)}")
        key = record.get(self._key.name)
        problem = self._key_problem(key)
        if problem is not None:
            return self.reject(record, self._key.name, *problem)

        problems: list[tuple[str, Problem]] = []
        undeclared: list[str] = []
        checks = self._checks
        string_limits = self._string_limits
        navigation = self._navigation
        for name, value in record.items():
            if value is None:
                continue
            # Inline the commonest case (a string within its MaxLength): wide records have
            # hundreds of them, and a call per field would double the cost of this loop.
            limit = string_limits.get(name, _NOT_STRING)
            if limit is not _NOT_STRING and type(value) is str and (
                    limit is None or len(value) <= limit):
                continue
            check = checks.get(name)
            if type(value) is TooDeeplyNested:  # the client could not decode it at all
                problems.append((name, (TOO_DEEP, repr(value))))
                continue
            if check is None:
                if name not in navigation and name not in self._known and "@" not in name:
                    undeclared.append(name)
                continue
            found = check(value)
            if found is not None:
                problems.append((name, found))
        if problems:
            name, (reason, detail) = problems[0]
            if len(problems) > 1:
                detail += "; also " + "; ".join(
                    f"{n}: {r}" for n, (r, _d) in problems[1:6]
                ) + ("; …" if len(problems) > 6 else "")
            return self.reject(record, name, reason, detail)

        document_record = record
        if navigation and not navigation.isdisjoint(record):
            # Expanded children are stored in their own tables, not inside the parent.
            document_record = {k: v for k, v in record.items() if k not in navigation}
        shape = None
        if self._shapes is not None and type(document_record) is dict:
            document_record, shape = self._shapes.compact(document_record)
        try:
            document = encode_json(document_record)
        except (TypeError, ValueError) as exc:
            return self.reject(record, None, UNSERIALIZABLE, str(exc))
        # U+0000 is escaped by the encoder, lone surrogates are not: encoding finds them
        # (and measures the statement size) at C speed, where a regex scan would not.
        size = len(document)
        bad_character = "\\u0000" in document
        if not bad_character and not document.isascii():
            try:
                size = len(document.encode("utf-8"))
            except UnicodeEncodeError:
                bad_character = True
        if bad_character:
            bad = _field_with_bad_character(document_record)
            if bad is not None:
                return self.reject(record, bad, INVALID_CHARACTER,
                                    "contains U+0000 or a lone surrogate, which the "
                                    "databases cannot store")

        ticks: int | None = None
        version = self._version
        if version is not None:
            stamp = record.get(version)
            if stamp is not None:
                ticks = ODataTimestamp.parse(stamp).ticks
        values = self._row_values(key, document, shape, ticks, loaded_at)
        for name, column, convert in self._typed:
            value = record.get(name)
            values[column] = None if value is None else convert(value)
        for column in self._retired:
            values[column] = None
        return PreparedRow(key=key, ticks=ticks, values=values, size=size,
                           undeclared=tuple(undeclared), record=record, shape=shape)

    def _row_values(self, key: Any, document: str, shape: Shape | None, ticks: int | None,
                    loaded_at: datetime) -> dict[str, Any]:
        """The columns every row has, whichever path prepared it; typed ones follow."""
        values = {
            self._key_column: key,
            RECORD_COLUMN: document,
            VERSION_COLUMN: ticks,
            DELETED_COLUMN: None,
            LOADED_COLUMN: loaded_at,
        }
        if self._shapes is not None:
            # Always written, so a record stored whole over a compact one clears it.
            values[SHAPE_COLUMN] = None if shape is None else shape.id
        return values

    def _key_problem(self, key: Any) -> Problem | None:
        if key is None:
            return MISSING_KEY, f"no {self._key.name}"
        if self._key.kind == "integer":
            if type(key) is not int:
                return WRONG_TYPE, f"expected an integer key, got {type_name(key)}"
            return None
        if not isinstance(key, str):
            return WRONG_TYPE, f"expected a string key, got {type_name(key)}"
        if not key.strip():
            return MISSING_KEY, f"{self._key.name} is empty"
        if len(key) > self._key_limit:
            return TOO_LONG, f"{len(key)} characters, MaxLength is {self._key_limit}"
        if "\x00" in key or _SURROGATE.search(key):
            return INVALID_CHARACTER, "the key contains U+0000 or a lone surrogate"
        return None

    def reject(self, record: Any, field: str | None, reason: str, detail: str) -> Rejection:
        return Rejection(resource=self.resource, record_key=self.record_key(record),
                         field=field, reason=reason, detail=detail, raw_record=record)


def _has_bad_character(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_bad_character(k) or _has_bad_character(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_bad_character(v) for v in value)
    return False


def _field_with_bad_character(record: Mapping[str, Any]) -> str | None:
    for name, value in record.items():
        if _has_bad_character(name) or _has_bad_character(value):
            return name
    return None
