"""OData v4 system query options as the simulator accepts them: $filter, $orderby, $select
and $expand, parsed into small frozen dataclasses, and $filter evaluated against a record.

Pure: standard library only, no I/O, and nothing from the rest of `trestle_tasks`, so the
simulator cannot share a mistake with the pipeline's query builder.

The grammar is the subset of OData v4 that Trestle serves. Anything outside it is
an `ODataSyntaxError` whose text is fit for an HTTP 400 body. Parsing is strict where Trestle
may be lenient (operators need surrounding spaces, keywords are lowercase): a client that
passes against the simulator must also pass against the real service.

Positions in error messages are 0-based character offsets into the option value (for a
nested option inside `$expand`, into the whole `$expand` value).
"""

from __future__ import annotations

import datetime as _dt
import operator
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as _dataclass_field
from decimal import Decimal
from typing import Any, TypedDict, TypeGuard

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "Call",
    "Compare",
    "EnumLiteral",
    "ExpandItem",
    "Expr",
    "Field",
    "Has",
    "Literal",
    "Not",
    "ODataSyntaxError",
    "Or",
    "Timestamp",
    "evaluate",
    "fields_referenced",
    "parse_expand",
    "parse_filter",
    "parse_orderby",
    "parse_select",
    "parse_timestamp",
    "sort_key",
]

# Longest option value accepted, in characters: bounds the work one request can cause.
MAX_LENGTH = 64 * 1024
# Deepest nesting accepted, both for parentheses/not/function calls while parsing and for
# the depth of the resulting tree, so no consumer walking the tree recursively can hit
# Python's recursion limit.
MAX_DEPTH = 100


class ODataSyntaxError(ValueError):
    """A query option Trestle would answer with 400. `str(e)` is a short message for the body."""

    def __init__(self, detail: str, position: int | None = None, option: str | None = None):
        where = ""
        if position is not None:
            where += f" at position {position}"
        if option:
            where += f" in {option}"
        super().__init__(detail + where)
        self.detail = detail
        self.position = position
        self.option = option


# --------------------------------------------------------------------------- timestamps

_TICKS_PER_SECOND = 10_000_000
_SECONDS_PER_DAY = 86_400
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
# .NET's DateTimeOffset (what Trestle runs on) refuses offsets beyond +-14:00.
_MAX_OFFSET_MINUTES = 14 * 60

# [0-9] rather than \d: \d also matches non-ASCII digits such as Arabic-Indic ones.
_TIMESTAMP_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]+))?(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE_RE = re.compile(r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})")
_TIMESTAMP_FORMAT = "YYYY-MM-DDTHH:MM:SS[.fffffff](Z|+HH:MM|-HH:MM)"


@dataclass(frozen=True, order=True)
class Timestamp:
    """An Edm.DateTimeOffset: 100 ns ticks since the Unix epoch (UTC) plus the text as written.

    Equality, ordering and hashing use the ticks only: the same instant written with two
    different offsets is one value, as it is for Trestle.
    """

    ticks: int
    text: str = _dataclass_field(compare=False)

    @classmethod
    def from_ticks(cls, ticks: int) -> Timestamp:
        """The canonical UTC form, `YYYY-MM-DDTHH:MM:SS.fffffffZ` (always 7 digits)."""
        days, rest = divmod(ticks, _SECONDS_PER_DAY * _TICKS_PER_SECOND)
        seconds, fraction = divmod(rest, _TICKS_PER_SECOND)
        day = _dt.date.fromordinal(_EPOCH_ORDINAL + days)  # ValueError outside years 1-9999
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        text = (
            f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
            f"T{hours:02d}:{minutes:02d}:{seconds:02d}.{fraction:07d}Z"
        )
        return cls(ticks, text)

    def __str__(self) -> str:
        return self.text


def parse_timestamp(text: str) -> Timestamp:
    """Parse `YYYY-MM-DDTHH:MM:SS[.f{1,7}](Z|+-HH:MM)`; anything else is an ODataSyntaxError."""
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise ODataSyntaxError(
            f"invalid timestamp {_shorten(text)!r}, expected {_TIMESTAMP_FORMAT}"
        )
    fraction = match["frac"] or ""
    if len(fraction) > 7:
        # Edm.DateTimeOffset has precision 7 on Trestle; more digits would be silently lost.
        raise ODataSyntaxError(f"timestamp {_shorten(text)!r} has more than 7 fractional digits")
    if match["offset"] is None:
        raise ODataSyntaxError(f"timestamp {_shorten(text)!r} has no offset (Z or +-HH:MM)")
    day = _calendar_date(match["date"])
    hour, minute, second = int(match["h"]), int(match["m"]), int(match["s"])
    if day is None or hour > 23 or minute > 59 or second > 59:
        raise ODataSyntaxError(f"timestamp {_shorten(text)!r} is not a valid date and time")
    offset_minutes = _offset_minutes(match["offset"])
    if offset_minutes is None:
        raise ODataSyntaxError(f"timestamp {_shorten(text)!r} has an invalid offset")
    seconds = (
        (day.toordinal() - _EPOCH_ORDINAL) * _SECONDS_PER_DAY
        + hour * 3600
        + minute * 60
        + second
        - offset_minutes * 60
    )
    return Timestamp(seconds * _TICKS_PER_SECOND + int(fraction.ljust(7, "0")), text)


def _calendar_date(text: str) -> _dt.date | None:
    """`YYYY-MM-DD` as a date, or None when it is not a real calendar day."""
    match = _DATE_RE.fullmatch(text)
    if match is None:
        return None
    try:
        return _dt.date(int(match["y"]), int(match["mo"]), int(match["d"]))
    except ValueError:
        return None


def _offset_minutes(offset: str) -> int | None:
    if offset == "Z":
        return 0
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    total = hours * 60 + minutes
    if minutes > 59 or total > _MAX_OFFSET_MINUTES:
        return None
    return -total if offset[0] == "-" else total


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class EnumLiteral:
    """`Namespace.Type'Member'` or, for multi-select enumerations, `Namespace.Type'A,B'`."""

    type_name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Literal:
    """kind: string int decimal double bool null datetimeoffset date enum."""

    kind: str
    value: object


@dataclass(frozen=True)
class Compare:
    op: str  # eq ne gt ge lt le
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Has:
    field: Field
    value: Literal  # kind "enum", or "string" holding comma-separated member names


@dataclass(frozen=True)
class Call:
    name: str  # contains startswith endswith tolower toupper
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr = Field | Literal | Compare | Has | Call | And | Or | Not


@dataclass(frozen=True)
class ExpandItem:
    """One `$expand` item, e.g. `Media($select=MediaURL;$orderby=Order;$top=5)`."""

    name: str
    select: list[str] | None = None
    filter: Expr | None = None
    orderby: list[tuple[str, bool]] | None = None
    top: int | None = None
    skip: int | None = None


_COMPARISON_OPS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_KEYWORDS = _COMPARISON_OPS | {"and", "or", "not", "has"}
_BOOLEAN_FUNCTIONS = {"contains": 2, "startswith": 2, "endswith": 2}
_TEXT_FUNCTIONS = {"tolower": 1, "toupper": 1}
_FUNCTIONS = {**_BOOLEAN_FUNCTIONS, **_TEXT_FUNCTIONS}
# Named so the error can say "not supported" instead of "unknown function".
_LAMBDA_OPERATORS = frozenset({"any", "all"})
_WORD_LITERALS = {
    "true": Literal("bool", True),
    "false": Literal("bool", False),
    "null": Literal("null", None),
}
_NAVIGATION_ERROR = "lambda (any/all) and navigation-path filters are not supported"


# --------------------------------------------------------------------------- tokenizer

_WHITESPACE = " \t\r\n"
_DIGITS = "0123456789"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUALIFIED_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_ENUM_MEMBER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+")
# Everything that could belong to a timestamp, so one that is malformed (too many digits,
# no offset) is reported as such rather than as a stray character after a date.
_TIMESTAMPISH_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9A-Za-z:.+\-]*")
_NUMBER_RE = re.compile(r"-?[0-9]+(?P<frac>\.[0-9]+)?(?P<exp>[eE][+-]?[0-9]+)?")
# A literal ending right before one of these was mistyped (`1.5.2`, `12abc`, `2024-01`).
_LITERAL_GLUE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-:+'")


@dataclass(frozen=True)
class _Token:
    kind: str  # ident literal ( ) , / * eof
    pos: int
    end: int
    space_before: bool
    value: object = None  # the name for ident, a Literal for literal


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tokenize(text: str, start: int, end: int, option: str) -> Iterator[_Token]:
    """Tokens of text[start:end], ending with one "eof" token.

    A generator, so a lexical error after the point where the parser already knows what is
    wrong (`OpenHouse/any(o: ...)`) does not hide the parser's clearer message.
    """
    i = start
    while True:
        j = i
        while j < end and text[j] in _WHITESPACE:
            j += 1
        space_before = j > i
        if j >= end:
            yield _Token("eof", end, end, space_before)
            return
        token = _scan_token(text, j, end, option, space_before)
        yield token
        i = token.end


def _scan_token(text: str, i: int, end: int, option: str, space_before: bool) -> _Token:
    ch = text[i]
    if ch in "(),/*":
        return _Token(ch, i, i + 1, space_before)
    if ch == "'":
        value, stop = _scan_string(text, i, end, option)
        return _Token("literal", i, stop, space_before, Literal("string", value))
    if ch in _DIGITS or (ch == "-" and i + 1 < end and text[i + 1] in _DIGITS):
        return _scan_number_like(text, i, end, option, space_before)
    if _QUALIFIED_RE.match(text, i, end):
        return _scan_name(text, i, end, option, space_before)
    raise ODataSyntaxError(f"unexpected character {ch!r}", i, option)


def _scan_string(text: str, start: int, end: int, option: str) -> tuple[str, int]:
    """A single-quoted literal from `start`; a doubled quote stands for one quote."""
    parts: list[str] = []
    i = start + 1
    while True:
        quote = text.find("'", i, end)
        if quote < 0:
            raise ODataSyntaxError("unterminated string literal", start, option)
        parts.append(text[i:quote])
        if quote + 1 < end and text[quote + 1] == "'":
            parts.append("'")
            i = quote + 2
            continue
        return "".join(parts), quote + 1


def _scan_number_like(text: str, i: int, end: int, option: str, space_before: bool) -> _Token:
    """A timestamp, date or number: all start with a digit, so decide by lookahead."""
    match = _TIMESTAMPISH_RE.match(text, i, end)
    if match is not None:
        try:
            literal = Literal("datetimeoffset", parse_timestamp(match.group()))
        except ODataSyntaxError as exc:
            raise ODataSyntaxError(exc.detail, i, option) from None
        return _literal_token(text, i, match.end(), end, option, space_before, literal)
    match = _DATE_RE.match(text, i, end)
    if match is not None:
        day = _calendar_date(match.group())
        if day is None:
            raise ODataSyntaxError(f"invalid date {match.group()!r}", i, option)
        return _literal_token(text, i, match.end(), end, option, space_before, Literal("date", day))
    match = _NUMBER_RE.match(text, i, end)
    assert match is not None  # the caller saw a digit, possibly after '-'
    return _literal_token(
        text, i, match.end(), end, option, space_before, _number_literal(match, i, option)
    )


def _number_literal(match: re.Match[str], pos: int, option: str) -> Literal:
    digits = match.group()
    if match["exp"]:
        value = float(digits)
        if value in (float("inf"), float("-inf")):
            raise ODataSyntaxError(f"number {_shorten(digits)!r} is out of range", pos, option)
        return Literal("double", value)
    if match["frac"]:
        # Decimal, not float: 12.50 must compare exactly with prices stored as decimals.
        return Literal("decimal", Decimal(digits))
    return Literal("int", int(digits))


def _literal_token(
    text: str, start: int, stop: int, end: int, option: str, space_before: bool, literal: Literal
) -> _Token:
    if stop < end and text[stop] in _LITERAL_GLUE:
        raise ODataSyntaxError(
            f"malformed literal {_shorten(text[start : stop + 1])!r}", start, option
        )
    return _Token("literal", start, stop, space_before, literal)


def _scan_name(text: str, i: int, end: int, option: str, space_before: bool) -> _Token:
    match = _QUALIFIED_RE.match(text, i, end)
    assert match is not None
    name, stop = match.group(), match.end()
    quoted = stop < end and text[stop] == "'"
    if quoted and "." in name:
        raw, after = _scan_string(text, stop, end, option)
        members = _enum_members(raw, stop, option)
        literal = Literal("enum", EnumLiteral(name, members))
        return _Token("literal", i, after, space_before, literal)
    if quoted and name not in _KEYWORDS:
        # binary'..', duration'..', geography'..' and unqualified enums: none used by Trestle.
        raise ODataSyntaxError(
            f"typed literal {name}'...' is not supported (enumeration literals need a "
            "qualified type name such as Namespace.Enums.Type'Member')",
            i,
            option,
        )
    if "." in name:
        raise ODataSyntaxError(
            f"unexpected '.' in {_shorten(name)!r} (a qualified name is only valid as an "
            "enumeration literal, e.g. Namespace.Enums.Type'Member')",
            i + name.index("."),
            option,
        )
    return _Token("ident", i, stop, space_before, name)


def _enum_members(raw: str, pos: int, option: str) -> tuple[str, ...]:
    members = tuple(part.strip() for part in raw.split(","))
    for member in members:
        if not _ENUM_MEMBER_RE.fullmatch(member):
            raise ODataSyntaxError(f"invalid enumeration member {_shorten(member)!r}", pos, option)
    return members


# --------------------------------------------------------------------------- token stream


class _TokenStream:
    """Cursor over the tokens of one option value, with the shared error helpers."""

    def __init__(self, text: str, start: int, end: int, option: str) -> None:
        self._text = text
        self._option = option
        self._pending = _tokenize(text, start, end, option)
        self._current = next(self._pending)

    def peek(self) -> _Token:
        return self._current

    def advance(self) -> _Token:
        token = self._current
        if token.kind != "eof":
            self._current = next(self._pending)
        return token

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.value == word

    def error(self, detail: str, pos: int) -> ODataSyntaxError:
        return ODataSyntaxError(detail, pos, self._option)

    def unexpected(self, token: _Token, expected: str | None = None) -> ODataSyntaxError:
        wanted = f", expected {expected}" if expected else ""
        if token.kind == "eof":
            return self.error(f"unexpected end of input{wanted}", token.pos)
        shown = _shorten(self._text[token.pos : token.end])
        hint = ""
        if token.kind == ")":
            hint = " (unbalanced parentheses)"
        elif token.kind == "ident" and str(token.value).lower() in _KEYWORDS | {"asc", "desc"}:
            hint = " (keywords are lowercase)"
        return self.error(f"unexpected token {shown!r}{wanted}{hint}", token.pos)

    def expect(self, kind: str, expected: str) -> _Token:
        token = self.advance()
        if token.kind != kind:
            raise self.unexpected(token, expected)
        return token

    def property_name(self) -> str:
        """A plain property name, as $select and $orderby take (no paths, no functions)."""
        token = self.advance()
        if token.kind != "ident":
            raise self.unexpected(token, "a property name")
        following = self.peek()
        if following.kind == "/":
            raise self.error(
                f"navigation paths ({token.value}/...) are not supported", following.pos
            )
        if following.kind == "(" and not following.space_before:
            raise self.error("functions are not supported here", token.pos)
        return str(token.value)

    def list_separator(self) -> bool:
        """After an item: True for ',' (another item follows), False at the end."""
        token = self.advance()
        if token.kind == "eof":
            return False
        if token.kind != ",":
            raise self.unexpected(token, "',' or the end")
        return True


# --------------------------------------------------------------------------- $filter


@dataclass(frozen=True)
class _Parsed:
    node: Expr
    pos: int  # where the sub-expression starts, for error messages
    depth: int  # height of the sub-tree


_CONDITION_TYPES = (Compare, Has, And, Or, Not)


def _is_condition(node: Expr) -> bool:
    return isinstance(node, _CONDITION_TYPES) or (
        isinstance(node, Call) and node.name in _BOOLEAN_FUNCTIONS
    )


def _describe(node: Expr) -> str:
    if isinstance(node, Field):
        return f"field {node.name!r}"
    if isinstance(node, Literal):
        article = "an" if node.kind[0] in "aeiou" else "a"
        return f"{article} {node.kind} literal"
    if isinstance(node, Call):
        return f"{node.name}()"
    return "a condition"


class _FilterParser(_TokenStream):
    """Recursive descent, lowest precedence first: or < and < comparison/has < not < primary."""

    def __init__(self, text: str, start: int, end: int, option: str) -> None:
        super().__init__(text, start, end, option)
        self._nesting = 0

    def parse(self) -> Expr:
        if self.peek().kind == "eof":
            raise self.error("empty filter expression", self.peek().pos)
        result = self._parse_or()
        token = self.peek()
        if token.kind != "eof":
            raise self.unexpected(token)
        self._require_condition(result, "as the filter")
        return result.node

    # -- helpers

    @contextmanager
    def _nested(self, pos: int) -> Iterator[None]:
        # Bounds parser recursion: redundant parentheses add no tree depth but do add frames.
        self._nesting += 1
        if self._nesting > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (limit {MAX_DEPTH})", pos)
        try:
            yield
        finally:
            self._nesting -= 1

    def _node(self, node: Expr, pos: int, *children: _Parsed) -> _Parsed:
        depth = 1 + max((child.depth for child in children), default=0)
        if depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (limit {MAX_DEPTH})", pos)
        return _Parsed(node, pos, depth)

    def _balanced(self, cls: type[And] | type[Or], terms: list[_Parsed]) -> _Parsed:
        # and/or are associative, so a long chain (a key list of thousands of `or` terms)
        # becomes a tree of logarithmic height instead of one as tall as the chain.
        if len(terms) == 1:
            return terms[0]
        middle = (len(terms) + 1) // 2
        left = self._balanced(cls, terms[:middle])
        right = self._balanced(cls, terms[middle:])
        return self._node(cls(left.node, right.node), left.pos, left, right)

    def _take_operator(self) -> str:
        token = self.advance()
        following = self.peek()
        if not token.space_before or (following.kind != "eof" and not following.space_before):
            raise self.error(f"operator {token.value!r} must be surrounded by spaces", token.pos)
        return str(token.value)

    def _require_condition(self, parsed: _Parsed, context: str) -> None:
        if not _is_condition(parsed.node):
            raise self.error(
                "expected a condition (comparison, 'has', contains/startswith/endswith) "
                f"{context}, found {_describe(parsed.node)}",
                parsed.pos,
            )

    def _require_value(self, parsed: _Parsed, context: str) -> None:
        if _is_condition(parsed.node) and not isinstance(parsed.node, Call):
            raise self.error(
                f"expected a field, literal or function as operand of {context}, found a condition",
                parsed.pos,
            )

    # -- grammar

    # Each nesting level costs one pass through _parse_or .. _parse_primary, so these stay
    # separate small methods without extra indirection: 5 frames a level keeps MAX_DEPTH
    # levels well inside Python's default recursion limit.

    def _parse_or(self) -> _Parsed:
        terms = [self._parse_and()]
        while self.at_word("or"):
            self._take_operator()
            terms.append(self._parse_and())
        return self._join("or", Or, terms)

    def _parse_and(self) -> _Parsed:
        terms = [self._parse_comparison()]
        while self.at_word("and"):
            self._take_operator()
            terms.append(self._parse_comparison())
        return self._join("and", And, terms)

    def _join(self, word: str, cls: type[And] | type[Or], terms: list[_Parsed]) -> _Parsed:
        if len(terms) > 1:
            for term in terms:
                self._require_condition(term, f"around {word!r}")
        return self._balanced(cls, terms)

    def _parse_comparison(self) -> _Parsed:
        left = self._parse_unary()
        token = self.peek()
        if token.kind == "ident" and token.value in _COMPARISON_OPS:
            op = self._take_operator()
            right = self._parse_unary()
            self._require_value(left, repr(op))
            self._require_value(right, repr(op))
            return self._node(Compare(op, left.node, right.node), left.pos, left, right)
        if self.at_word("has"):
            self._take_operator()
            return self._finish_has(left, self._parse_unary())
        return left

    def _finish_has(self, left: _Parsed, right: _Parsed) -> _Parsed:
        if not isinstance(left.node, Field):
            raise self.error("'has' needs a property on its left", left.pos)
        value = right.node
        if not isinstance(value, Literal) or value.kind not in ("enum", "string"):
            raise self.error(
                "'has' needs an enumeration literal such as Namespace.Enums.Type'Member' "
                f"on its right, found {_describe(value)}",
                right.pos,
            )
        if value.kind == "string":
            _enum_members(str(value.value), right.pos, self._option)
        return self._node(Has(left.node, value), left.pos, left, right)

    def _parse_unary(self) -> _Parsed:
        token = self.peek()
        if not self.at_word("not"):
            return self._parse_primary()
        self.advance()
        following = self.peek()
        if following.kind not in ("(", "eof") and not following.space_before:
            raise self.error("'not' must be followed by a space or '('", token.pos)
        with self._nested(token.pos):
            operand = self._parse_unary()
        if not _is_condition(operand.node):
            # `not A eq 1` binds as `(not A) eq 1` in OData; say how to write what was meant.
            raise self.error(
                "'not' applies to the term right after it; write not (A eq 1) or "
                f"not contains(...), found {_describe(operand.node)}",
                operand.pos,
            )
        return self._node(Not(operand.node), token.pos, operand)

    def _parse_primary(self) -> _Parsed:
        token = self.advance()
        if token.kind == "(":
            with self._nested(token.pos):
                inner = self._parse_or()
            self.expect(")", "')'")
            return _Parsed(inner.node, token.pos, inner.depth)
        if token.kind == "literal":
            assert isinstance(token.value, Literal)
            return _Parsed(token.value, token.pos, 1)
        if token.kind == "ident":
            return self._parse_name(token)
        raise self.unexpected(token, "a value or condition")

    def _parse_name(self, token: _Token) -> _Parsed:
        name = str(token.value)
        if name in _WORD_LITERALS:
            return _Parsed(_WORD_LITERALS[name], token.pos, 1)
        if name in _KEYWORDS:
            raise self.error(f"expected a value but found the keyword {name!r}", token.pos)
        following = self.peek()
        if following.kind == "/":
            raise self.error(f"{_NAVIGATION_ERROR} ({name}/...)", following.pos)
        if following.kind == "(" and not following.space_before:
            return self._parse_call(token)
        return _Parsed(Field(name), token.pos, 1)

    def _parse_call(self, token: _Token) -> _Parsed:
        name = str(token.value)
        if name in _LAMBDA_OPERATORS:
            raise self.error(_NAVIGATION_ERROR, token.pos)
        arity = _FUNCTIONS.get(name)
        if arity is None:
            hint = " (function names are lowercase)" if name.lower() in _FUNCTIONS else ""
            raise self.error(f"unknown function {_shorten(name)!r}{hint}", token.pos)
        self.advance()  # the '('
        args: list[_Parsed] = []
        with self._nested(token.pos):
            if self.peek().kind != ")":
                args.append(self._parse_argument(name))
                while self.peek().kind == ",":
                    self.advance()
                    args.append(self._parse_argument(name))
            self.expect(")", "',' or ')'")
        if len(args) != arity:
            plural = "s" if arity > 1 else ""
            raise self.error(f"{name}() takes {arity} argument{plural}, got {len(args)}", token.pos)
        return self._node(Call(name, tuple(a.node for a in args)), token.pos, *args)

    def _parse_argument(self, function: str) -> _Parsed:
        # Arguments are text values, never conditions, so the primary rule is enough (a
        # parenthesised argument still goes through _parse_or) and nesting stays cheap.
        arg = self._parse_primary()
        node = arg.node
        is_text = (
            isinstance(node, Field)
            or (isinstance(node, Literal) and node.kind == "string")
            or (isinstance(node, Call) and node.name in _TEXT_FUNCTIONS)
        )
        if not is_text:
            raise self.error(
                f"{function}() takes text arguments (a property, a string or "
                f"tolower/toupper), found {_describe(node)}",
                arg.pos,
            )
        return arg


def _check_length(text: str, option: str) -> None:
    if len(text) > MAX_LENGTH:
        raise ODataSyntaxError(
            f"{option} is too long ({len(text)} characters, the limit is {MAX_LENGTH})"
        )


def parse_filter(text: str) -> Expr:
    """Parse a (percent-decoded) $filter value into an expression tree."""
    _check_length(text, "$filter")
    return _parse_filter(text, 0, len(text), "$filter")


def _parse_filter(text: str, start: int, end: int, option: str) -> Expr:
    try:
        return _FilterParser(text, start, end, option).parse()
    except RecursionError:
        # Backstop only: MAX_DEPTH normally stops first, unless the caller's own stack is
        # already deep. A 400 is still the right answer.
        raise ODataSyntaxError(f"expression nested too deeply (limit {MAX_DEPTH})") from None


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, Compare | And | Or):
        return (node.left, node.right)
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Has):
        return (node.field, node.value)
    if isinstance(node, Call):
        return node.args
    return ()


def fields_referenced(expr: Expr) -> frozenset[str]:
    """Every property name the expression reads."""
    names: set[str] = set()
    stack = [expr]
    while stack:  # iterative: hand-built trees need not respect MAX_DEPTH
        node = stack.pop()
        if isinstance(node, Field):
            names.add(node.name)
        stack.extend(_children(node))
    return frozenset(names)


# --------------------------------------------------------------------------- evaluation


def evaluate(expr: Expr, record: dict[str, Any]) -> bool:
    """Whether `record` matches the filter.

    OData null rules: gt/ge/lt/le with a null operand are false; `eq null` matches only
    null; `ne` is true when exactly one side is null. A string function of a null value is
    unknown (null in OData v4), and unknown propagates through not/and/or (three-valued
    logic, as in OData and SQL) and finally excludes the record: `not contains(City,'x')`
    does not match a null City.
    """
    return _truth(expr, record) is True


def _truth(node: Expr, record: dict[str, Any]) -> bool | None:
    """True, False or None (unknown) for a condition."""
    if isinstance(node, And):
        left = _truth(node.left, record)
        if left is False:
            return False
        right = _truth(node.right, record)
        if right is False:
            return False
        return True if left and right else None
    if isinstance(node, Or):
        left = _truth(node.left, record)
        if left is True:
            return True
        right = _truth(node.right, record)
        if right is True:
            return True
        return False if left is False and right is False else None
    if isinstance(node, Not):
        inner = _truth(node.operand, record)
        return None if inner is None else not inner
    if isinstance(node, Compare):
        return _compare(node.op, _value(node.left, record), _value(node.right, record))
    if isinstance(node, Has):
        return _has(record.get(node.field.name), node.value)
    value = _value(node, record)  # a boolean function, or a hand-built boolean field/literal
    return value if isinstance(value, bool) else None


def _value(node: Expr, record: dict[str, Any]) -> object:
    if isinstance(node, Field):
        return record.get(node.name)
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Call):
        return _call(node.name, [_value(arg, record) for arg in node.args])
    return _truth(node, record)


def _call(name: str, args: list[object]) -> object:
    texts = [arg for arg in args if isinstance(arg, str)]
    if len(texts) != len(args):
        return None  # null (or non-text) in, null out
    if name == "contains":
        return texts[1] in texts[0]
    if name == "startswith":
        return texts[0].startswith(texts[1])
    if name == "endswith":
        return texts[0].endswith(texts[1])
    if name == "tolower":
        return texts[0].lower()
    if name == "toupper":
        return texts[0].upper()
    raise ValueError(f"unknown function {name!r}")


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _compare(op: str, left: object, right: object) -> bool:
    if left is None or right is None:
        both_null = left is None and right is None
        if op == "eq":
            return both_null
        if op == "ne":
            return not both_null
        return False
    pair = _comparable(left, right)
    if pair is None:
        return False  # different types (or an unparseable timestamp) never match
    a, b, ordered = pair
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if not ordered:
        return False
    try:
        return bool(_ORDERING[op](a, b))
    except TypeError:
        return False


def _comparable(left: object, right: object) -> tuple[object, object, bool] | None:
    """Both sides in one comparable form plus whether that form is ordered; None if neither.

    The literal's type decides how the record's value is read: against a Timestamp a string
    is parsed as a timestamp, against a date as `YYYY-MM-DD`, against an enum as member names.
    """
    if isinstance(left, EnumLiteral) or isinstance(right, EnumLiteral):
        # Members have no order without the metadata's underlying values: eq/ne only.
        return _both(_member_set(left), _member_set(right), ordered=False)
    if isinstance(left, Timestamp) or isinstance(right, Timestamp):
        return _both(_as_ticks(left), _as_ticks(right), ordered=True)
    if _is_date(left) or _is_date(right):
        return _both(_as_date(left), _as_date(right), ordered=True)
    if isinstance(left, bool) or isinstance(right, bool):
        # Before numbers: bool is an int subclass, but true must not equal 1.
        ok = isinstance(left, bool) and isinstance(right, bool)
        return (left, right, True) if ok else None
    if _is_number(left) or _is_number(right):
        return (left, right, True) if _is_number(left) and _is_number(right) else None
    if isinstance(left, str) and isinstance(right, str):
        return left, right, True  # Python orders str by code point, as OData does
    return None


def _both(a: object, b: object, *, ordered: bool) -> tuple[object, object, bool] | None:
    return None if a is None or b is None else (a, b, ordered)


def _is_date(value: object) -> TypeGuard[_dt.date]:
    return isinstance(value, _dt.date) and not isinstance(value, _dt.datetime)


def _is_number(value: object) -> TypeGuard[int | float | Decimal]:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _as_ticks(value: object) -> int | None:
    if isinstance(value, Timestamp):
        return value.ticks
    if isinstance(value, str):
        try:
            return parse_timestamp(value).ticks
        except ODataSyntaxError:
            return None
    if isinstance(value, _dt.datetime) and value.utcoffset() is not None:
        return _datetime_ticks(value)
    return None


def _datetime_ticks(value: _dt.datetime) -> int:
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta // _dt.timedelta(microseconds=1)) * 10


def _as_date(value: object) -> _dt.date | None:
    if _is_date(value):
        return value
    if isinstance(value, str):
        return _calendar_date(value)
    return None


def _member_set(value: object) -> frozenset[str] | None:
    """Enumeration members held by a value: "A,B" (Trestle's multi-select form), a list, or
    an enum literal."""
    if isinstance(value, EnumLiteral):
        return frozenset(value.members)
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(str(item) for item in value if item is not None)
    return None


def _has(value: object, literal: Literal) -> bool:
    if value is None:
        return False
    present = _member_set(value)
    if isinstance(literal.value, EnumLiteral):
        wanted = frozenset(literal.value.members)
    else:
        wanted = _member_set(literal.value) or frozenset()
    return present is not None and bool(wanted) and wanted <= present


# --------------------------------------------------------------------------- $orderby, $select


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """`"ModificationTimestamp asc,ListingKey desc"` -> [(name, descending)], asc by default."""
    _check_length(text, "$orderby")
    return _parse_orderby(text, 0, len(text), "$orderby")


def _parse_orderby(text: str, start: int, end: int, option: str) -> list[tuple[str, bool]]:
    stream = _TokenStream(text, start, end, option)
    items: list[tuple[str, bool]] = []
    seen: set[str] = set()
    while True:
        name_pos = stream.peek().pos
        name = stream.property_name()
        descending = False
        direction = stream.peek()
        if direction.kind == "ident" and direction.value in ("asc", "desc"):
            if not direction.space_before:
                raise stream.error("expected a space before asc/desc", direction.pos)
            stream.advance()
            descending = direction.value == "desc"
        if name in seen:
            # The Microsoft OData stack Trestle runs on refuses a repeated $orderby property.
            raise stream.error(f"duplicate property {name!r}", name_pos)
        seen.add(name)
        items.append((name, descending))
        if not stream.list_separator():
            return items


def parse_select(text: str) -> list[str]:
    """`"A, B,C"` -> ["A", "B", "C"]; `*` is kept as an item; an empty item is an error."""
    _check_length(text, "$select")
    return _parse_select(text, 0, len(text), "$select")


def _parse_select(text: str, start: int, end: int, option: str) -> list[str]:
    stream = _TokenStream(text, start, end, option)
    names: list[str] = []
    while True:
        if stream.peek().kind == "*":
            stream.advance()
            names.append("*")
        else:
            names.append(stream.property_name())
        if not stream.list_separator():
            return names


# --------------------------------------------------------------------------- $expand

_EXPAND_OPTION_RE = re.compile(r"\$(?P<name>[A-Za-z]+)=")
_EXPAND_OPTIONS = frozenset({"select", "filter", "orderby", "top", "skip"})
_COUNT_RE = re.compile(r"[0-9]+")


def parse_expand(text: str) -> list[ExpandItem]:
    """`"Media($select=MediaURL,Order;$orderby=Order;$top=5),OpenHouse"` -> ExpandItems."""
    _check_length(text, "$expand")
    items: list[ExpandItem] = []
    seen: set[str] = set()
    i = _skip_whitespace(text, 0)
    if i == len(text):
        raise ODataSyntaxError("empty $expand", i, "$expand")
    while True:
        item_start = i
        item, i = _parse_expand_item(text, i)
        if item.name in seen:
            raise ODataSyntaxError(f"{item.name!r} is expanded twice", item_start, "$expand")
        seen.add(item.name)
        items.append(item)
        i = _skip_whitespace(text, i)
        if i == len(text):
            return items
        if text[i] != ",":
            raise ODataSyntaxError(f"unexpected character {text[i]!r}", i, "$expand")
        i = _skip_whitespace(text, i + 1)


def _skip_whitespace(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _parse_expand_item(text: str, i: int) -> tuple[ExpandItem, int]:
    match = _IDENT_RE.match(text, i)
    if match is None:
        raise ODataSyntaxError("expected a navigation property name", i, "$expand")
    name, i = match.group(), match.end()
    if i < len(text) and text[i] in "/.":
        raise ODataSyntaxError(
            f"paths and casts ({name}{text[i]}...) are not supported", i, "$expand"
        )
    if i < len(text) and text[i] == "(":
        options, i = _parse_expand_options(text, i)
        return ExpandItem(name, **options), i
    return ExpandItem(name), i


class _ExpandOptions(TypedDict, total=False):
    """The options of one `$expand` item, named as `ExpandItem`'s fields."""

    select: list[str]
    filter: Expr
    orderby: list[tuple[str, bool]]
    top: int
    skip: int


def _parse_expand_options(text: str, open_pos: int) -> tuple[_ExpandOptions, int]:
    """The `(...)` after an expanded name; returns the options and the index after `)`."""
    options: _ExpandOptions = {}
    i = open_pos + 1
    while True:
        stop, closing = _option_end(text, i, open_pos)
        name, option = _parse_expand_option(text, i, stop)
        if name in options:
            raise ODataSyntaxError(f"duplicate option ${name}", i, "$expand")
        options.update(option)
        if closing:
            return options, stop + 1
        i = stop + 1


def _option_end(text: str, i: int, open_pos: int) -> tuple[int, bool]:
    """Index of the `;` or `)` ending the option that starts at i, skipping quoted strings
    and nested parentheses (a nested $filter may hold both); True if it is the `)`."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            i = _scan_string(text, i, len(text), "$expand")[1]
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i, True
            depth -= 1
        elif ch == ";" and depth == 0:
            return i, False
        i += 1
    raise ODataSyntaxError("unbalanced '('", open_pos, "$expand")


def _parse_expand_option(text: str, start: int, stop: int) -> tuple[str, _ExpandOptions]:
    """One `$name=value` option: its name, and the option alone as `_ExpandOptions`."""
    i = _skip_whitespace(text, start)
    match = _EXPAND_OPTION_RE.match(text, i, stop)
    if match is None:
        raise ODataSyntaxError("expected an option such as $select=...", i, "$expand")
    name, value_start = match["name"], match.end()
    if name not in _EXPAND_OPTIONS:
        raise ODataSyntaxError(f"option ${name} is not supported inside $expand", i, "$expand")
    if name == "select":
        return name, {"select": _parse_select(text, value_start, stop, "$expand")}
    if name == "orderby":
        return name, {"orderby": _parse_orderby(text, value_start, stop, "$expand")}
    if name == "filter":
        return name, {"filter": _parse_filter(text, value_start, stop, "$expand")}
    count = text[value_start:stop].strip(_WHITESPACE)
    if not _COUNT_RE.fullmatch(count):
        raise ODataSyntaxError(f"${name} must be a non-negative integer", value_start, "$expand")
    if name == "top":
        return name, {"top": int(count)}
    return name, {"skip": int(count)}


# --------------------------------------------------------------------------- $orderby keys


def sort_key(value: object) -> tuple[Any, ...]:
    """A key that totally orders any mix of record values, for sorting by one property.

    Ranks: null first, then booleans, numbers (int/Decimal/float together, NaN last),
    timestamps (by ticks: one instant written with different offsets sorts as one value,
    exactly as `eq` sees it, so keyset paging by (timestamp, key) never skips a row),
    dates, other strings by code point, lists, anything else.
    """
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, int(value))
    if _is_number(value):
        if value != value:  # NaN: unordered, so put it after every number
            return (2, 1)
        return (2, 0, value)
    ticks = _as_ticks(value) if isinstance(value, str | Timestamp | _dt.datetime) else None
    if ticks is not None:
        return (3, ticks)
    if _is_date(value):
        return (4, value.isoformat())
    if isinstance(value, str):
        return (5, value)
    if isinstance(value, list | tuple):
        return (6, tuple(sort_key(item) for item in value))
    return (7, type(value).__name__, repr(value))
