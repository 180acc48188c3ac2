"""A pure OData v4 query builder: expressions in, an encoded URL out, no I/O.

Values are rendered as OData literals and then percent-encoded, so a value holding `'`,
`&`, `#`, `+` or non-ASCII text can neither end its literal nor start a new query option.
Field names are checked to be plain identifiers for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TypedDict, Unpack
from urllib.parse import quote

from trestle_tasks.core.timestamps import ODataTimestamp

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUALIFIED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# Left readable in URLs; everything else (including & # + = ; % and spaces) is encoded.
_SAFE = "'(),:$*"
_COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")

Value = str | int | Decimal | float | bool | None | date | datetime | ODataTimestamp


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid OData property name: {name!r}")
    return name


def format_literal(value: Value) -> str:
    """Render a Python value as an OData URL literal (before percent-encoding)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ODataTimestamp):
        return value.to_odata()
    if isinstance(value, datetime):
        return ODataTimestamp.from_datetime(value).to_odata()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"OData has no literal for {value}")
        return format(value, "f")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"OData has no literal for {value}")
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot render {type(value).__name__} as an OData literal")


@dataclass(frozen=True)
class Expr:
    """A $filter expression; combine with `&`, `|` and `~`."""

    text: str

    def __and__(self, other: Expr) -> Expr:
        return Expr(f"({self.text}) and ({other.text})")

    def __or__(self, other: Expr) -> Expr:
        return Expr(f"({self.text}) or ({other.text})")

    def __invert__(self) -> Expr:
        return Expr(f"not ({self.text})")

    def __str__(self) -> str:
        return self.text


def compare(name: str, op: str, value: Value) -> Expr:
    if op not in _COMPARISONS:
        raise ValueError(f"unknown comparison operator {op!r}")
    return Expr(f"{_check_name(name)} {op} {format_literal(value)}")


def eq(name: str, value: Value) -> Expr:
    return compare(name, "eq", value)


def ne(name: str, value: Value) -> Expr:
    return compare(name, "ne", value)


def gt(name: str, value: Value) -> Expr:
    return compare(name, "gt", value)


def ge(name: str, value: Value) -> Expr:
    return compare(name, "ge", value)


def lt(name: str, value: Value) -> Expr:
    return compare(name, "lt", value)


def le(name: str, value: Value) -> Expr:
    return compare(name, "le", value)


def _string_function(function: str, name: str, value: str) -> Expr:
    if not isinstance(value, str):
        raise TypeError(f"{function} takes a string, not {type(value).__name__}")
    return Expr(f"{function}({_check_name(name)},{format_literal(value)})")


def contains(name: str, value: str) -> Expr:
    return _string_function("contains", name, value)


def startswith(name: str, value: str) -> Expr:
    return _string_function("startswith", name, value)


def endswith(name: str, value: str) -> Expr:
    return _string_function("endswith", name, value)


def has(name: str, enum_type: str, members: Sequence[str]) -> Expr:
    """Multi-select enumeration test: `Appliances has Ns.Enums.Appliances'Dishwasher'`."""
    if not _QUALIFIED.match(enum_type):
        raise ValueError(f"not a qualified enumeration type: {enum_type!r}")
    if not members or any(not _IDENTIFIER.match(m) for m in members):
        raise ValueError(f"enumeration members must be identifiers: {list(members)!r}")
    return Expr(f"{_check_name(name)} has {enum_type}'{','.join(members)}'")


def all_of(*exprs: Expr | None) -> Expr | None:
    """AND of the given expressions, skipping None; None when nothing is left."""
    present = [e for e in exprs if e is not None]
    if not present:
        return None
    combined = present[0]
    for expr in present[1:]:
        combined = combined & expr
    return combined


def any_of(exprs: Sequence[Expr]) -> Expr:
    """OR of simple comparisons, flat: `a or b or c` (`|` would nest a pair of parentheses
    per term, and URL length is what limits a batch of keys)."""
    if not exprs:
        raise ValueError("any_of needs at least one expression")
    return Expr(" or ".join(e.text for e in exprs))


def after_keyset(
    timestamp_field: str, key_field: str, cursor: tuple[ODataTimestamp, str | None]
) -> Expr:
    """Strictly after (timestamp, key) in keyset order: ties on the timestamp are kept.

    A cursor without a key means "after every record at that timestamp".
    """
    stamp, key = cursor
    if key is None:
        return gt(timestamp_field, stamp)
    return gt(timestamp_field, stamp) | (eq(timestamp_field, stamp) & gt(key_field, key))


@dataclass(frozen=True)
class Expand:
    """`$expand=Name($select=...;$filter=...;$orderby=...;$top=...)`."""

    name: str
    select: tuple[str, ...] = ()
    filter: Expr | None = None
    orderby: tuple[tuple[str, bool], ...] = ()
    top: int | None = None

    def render(self) -> str:
        options = []
        if self.select:
            options.append("$select=" + ",".join(_check_name(n) for n in self.select))
        if self.filter is not None:
            options.append(f"$filter={self.filter.text}")
        if self.orderby:
            options.append("$orderby=" + _render_orderby(self.orderby))
        if self.top is not None:
            options.append(f"$top={_positive(self.top, '$top')}")
        name = _check_name(self.name)
        return f"{name}({';'.join(options)})" if options else name


def _render_orderby(orderby: Iterable[tuple[str, bool]]) -> str:
    return ",".join(f"{_check_name(n)} {'desc' if desc else 'asc'}" for n, desc in orderby)


def _positive(value: int, option: str, *, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{option} must be a {kind} integer")
    return value


class QueryChanges(TypedDict, total=False):
    """The fields `ODataQuery.with_` may change: any of `ODataQuery`'s."""

    resource: str
    filter: Expr | None
    select: tuple[str, ...]
    orderby: tuple[tuple[str, bool], ...]
    top: int | None
    skip: int | None
    count: bool
    expand: tuple[Expand, ...]
    replication: bool
    extra: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ODataQuery:
    """One query against an entity set. Immutable: `with_(...)` returns a changed copy."""

    resource: str
    filter: Expr | None = None
    select: tuple[str, ...] = ()
    orderby: tuple[tuple[str, bool], ...] = ()
    top: int | None = None
    skip: int | None = None
    count: bool = False
    expand: tuple[Expand, ...] = ()
    replication: bool = False
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        _check_name(self.resource)
        if self.replication and self.skip is not None:
            raise ValueError("$skip is not allowed with replication=true")
        if self.top is not None:
            _positive(self.top, "$top")
        if self.skip is not None:
            _positive(self.skip, "$skip", allow_zero=True)

    def with_(self, **changes: Unpack[QueryChanges]) -> ODataQuery:
        return replace(self, **changes)

    def options(self) -> list[tuple[str, str]]:
        """The query options as (name, unencoded value), in a stable order."""
        opts: list[tuple[str, str]] = []
        if self.filter is not None:
            opts.append(("$filter", self.filter.text))
        if self.select:
            opts.append(("$select", ",".join(_check_name(n) for n in self.select)))
        if self.orderby:
            opts.append(("$orderby", _render_orderby(self.orderby)))
        if self.top is not None:
            opts.append(("$top", str(self.top)))
        if self.skip is not None:
            opts.append(("$skip", str(self.skip)))
        if self.count:
            opts.append(("$count", "true"))
        if self.expand:
            opts.append(("$expand", ",".join(e.render() for e in self.expand)))
        if self.replication:
            opts.append(("replication", "true"))
        opts.extend(self.extra)
        return opts

    def query_string(self) -> str:
        return "&".join(f"{name}={quote(value, safe=_SAFE)}" for name, value in self.options())

    def url(self, odata_root: str) -> str:
        base = f"{odata_root.rstrip('/')}/{self.resource}"
        qs = self.query_string()
        return f"{base}?{qs}" if qs else base
