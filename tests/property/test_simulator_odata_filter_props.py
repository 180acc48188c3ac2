"""Property tests for the simulator's OData parser and $filter evaluator."""

from __future__ import annotations

import contextlib
import datetime as dt
import operator
from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from trestle_simulator.odata_filter import (
    Call,
    Compare,
    ExpandItem,
    Field,
    Literal,
    ODataSyntaxError,
    Timestamp,
    evaluate,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_timestamp,
    sort_key,
)

EPOCH = dt.datetime(1970, 1, 1)
OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}

# Text that favours the characters most likely to break quoting or URL handling.
tricky_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("'\"&#=%;(),/\\ \t\n+?$"),
        st.characters(codec="utf-8"),
    )
)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
# Property names are PascalCase on Trestle; the upper-case first letter also keeps the
# generated names clear of keywords (eq, and, asc, null, ...).
identifiers = st.builds(
    operator.add,
    st.sampled_from(_LETTERS[:26]),
    st.text(alphabet=_LETTERS + "0123456789", max_size=15),
)


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------- strings


@given(tricky_text)
def test_quoted_string_parses_back_to_the_same_value(value: str) -> None:
    assert parse_filter(f"Name eq {quote(value)}") == Compare(
        "eq", Field("Name"), Literal("string", value)
    )


@given(tricky_text)
def test_quoted_string_in_function_and_expand(value: str) -> None:
    call = parse_filter(f"contains(Name,{quote(value)})")
    assert call == Call("contains", (Field("Name"), Literal("string", value)))
    expand = parse_expand(f"Media($filter=MediaURL eq {quote(value)};$top=1)")
    assert expand == [
        ExpandItem(
            "Media", filter=Compare("eq", Field("MediaURL"), Literal("string", value)), top=1
        )
    ]


@given(tricky_text, tricky_text)
def test_string_comparison_matches_python(record_value: str, literal: str) -> None:
    for op, python_op in OPS.items():
        expr = parse_filter(f"Name {op} {quote(literal)}")
        assert evaluate(expr, {"Name": record_value}) is python_op(record_value, literal)
    contains = parse_filter(f"contains(Name,{quote(literal)})")
    assert evaluate(contains, {"Name": record_value}) is (literal in record_value)


# --------------------------------------------------------------------------- timestamps

local_times = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30, 23, 59, 59)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60)  # minutes


@st.composite
def timestamp_texts(draw: st.DrawFn) -> tuple[str, int]:
    """A timestamp written with 0-7 fractional digits and any offset, and its ticks computed
    with Python's datetime arithmetic as the oracle."""
    local = draw(local_times)
    seventh = draw(st.integers(0, 9))
    digits = draw(st.integers(0, 7))
    offset = draw(offsets)
    fraction = f"{local.microsecond:06d}{seventh}"[:digits]
    if offset == 0 and draw(st.booleans()):
        zone = "Z"
    else:
        sign = "-" if offset < 0 else "+"
        zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
        f"T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
        + (f".{fraction}" if digits else "")
        + zone
    )
    whole = local.replace(microsecond=0) - EPOCH - dt.timedelta(minutes=offset)
    ticks = (whole // dt.timedelta(seconds=1)) * 10_000_000 + int(fraction.ljust(7, "0"))
    return text, ticks


@given(timestamp_texts())
def test_timestamp_text_round_trips_ticks(case: tuple[str, int]) -> None:
    text, ticks = case
    stamp = parse_timestamp(text)
    assert stamp.ticks == ticks
    assert stamp.text == text
    literal = parse_filter(f"ModificationTimestamp gt {text}").right
    assert literal == Literal("datetimeoffset", Timestamp(ticks, text))
    assert literal.value.text == text
    canonical = Timestamp.from_ticks(ticks)
    assert canonical == stamp
    assert parse_timestamp(canonical.text).ticks == ticks


@given(st.integers(min_value=-(10**17), max_value=2 * 10**17))
def test_from_ticks_round_trips(ticks: int) -> None:
    text = Timestamp.from_ticks(ticks).text
    assert len(text) == len("2020-01-01T00:00:00.0000000Z")
    assert parse_timestamp(text).ticks == ticks


@given(timestamp_texts(), timestamp_texts(), st.sampled_from(sorted(OPS)))
def test_timestamp_comparison_matches_ticks(
    record: tuple[str, int], literal: tuple[str, int], op: str
) -> None:
    expr = parse_filter(f"ModificationTimestamp {op} {literal[0]}")
    expected = OPS[op](record[1], literal[1])
    assert evaluate(expr, {"ModificationTimestamp": record[0]}) is expected
    assert (sort_key(record[0]) < sort_key(literal[0])) is (record[1] < literal[1])


# --------------------------------------------------------------------------- numbers and logic

ints = st.integers(min_value=-(10**12), max_value=10**12)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=3, max_value=10**9)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
numbers = st.one_of(ints, decimals, floats)


def render_number(value: int | Decimal) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, str, object, bool]:
    """(field, filter text, the record's value, what Python says the comparison gives)."""
    field = draw(st.sampled_from(["Price", "City", "Count"]))
    op = draw(st.sampled_from(sorted(OPS)))
    if field == "City":
        value = draw(st.one_of(st.none(), tricky_text))
        literal: object = draw(tricky_text)
        text = f"City {op} {quote(literal)}"  # type: ignore[arg-type]
    else:
        value = draw(st.one_of(st.none(), numbers))
        literal = draw(st.one_of(ints, decimals))
        text = f"{field} {op} {render_number(literal)}"  # type: ignore[arg-type]
    # OData null semantics: only ne holds against a null value (the literal is never null).
    expected = op == "ne" if value is None else OPS[op](value, literal)
    return field, text, value, expected


@given(comparisons())
def test_comparison_matches_python(case: tuple[str, str, object, bool]) -> None:
    field, text, value, expected = case
    assert evaluate(parse_filter(text), {field: value}) is expected


@given(comparisons(), comparisons(), st.sampled_from(["and", "or"]), st.booleans())
def test_logic_matches_python(
    first: tuple[str, str, object, bool],
    second: tuple[str, str, object, bool],
    connective: str,
    negate: bool,
) -> None:
    assume(first[0] != second[0])  # one value per field in the record
    text = f"({first[1]}) {connective} ({second[1]})"
    expected = (first[3] and second[3]) if connective == "and" else (first[3] or second[3])
    if negate:
        text, expected = f"not ({text})", not expected
    record = {first[0]: first[2], second[0]: second[2]}
    assert evaluate(parse_filter(text), record) is expected


# --------------------------------------------------------------------------- other options


@given(
    st.lists(
        st.tuples(identifiers, st.sampled_from(["", " asc", " desc"])),
        min_size=1,
        unique_by=lambda item: item[0],  # a repeated $orderby property is an error
    )
)
def test_orderby_round_trips(items: list[tuple[str, str]]) -> None:
    text = ",".join(name + direction for name, direction in items)
    assert parse_orderby(text) == [(name, direction == " desc") for name, direction in items]


@given(st.lists(identifiers, min_size=1), st.sampled_from([",", ", ", " , "]))
def test_select_round_trips(names: list[str], separator: str) -> None:
    assert parse_select(separator.join(names)) == names


# --------------------------------------------------------------------------- robustness

token_soup = st.lists(
    st.sampled_from(
        [
            "(",
            ")",
            ",",
            "/",
            "'",
            "'x'",
            "''",
            "A",
            "B",
            "eq",
            "gt",
            "and",
            "or",
            "not",
            "has",
            "1",
            "-2.5",
            "1e3",
            "null",
            "true",
            "contains(",
            "tolower(",
            "any(",
            "2020-01-01T00:00:00Z",
            "2024-01-31",
            "Ns.T'A,B'",
            " ",
            "  ",
        ]
    ),
    max_size=25,
).map(" ".join)


@given(st.one_of(st.text(), token_soup))
def test_parser_only_ever_raises_odata_syntax_error(text: str) -> None:
    try:
        expr = parse_filter(text)
    except ODataSyntaxError as error:
        assert str(error)
        return
    # Whatever parsed must evaluate without error on any record.
    assert evaluate(expr, {"A": "x", "B": 1}) in (True, False)
    assert evaluate(expr, {}) in (True, False)


@given(st.one_of(st.text(), token_soup))
def test_other_options_only_ever_raise_odata_syntax_error(text: str) -> None:
    for parse in (parse_orderby, parse_select, parse_expand):
        with contextlib.suppress(ODataSyntaxError):
            parse(text)


record_values = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    decimals,
    st.floats(),  # NaN and infinities included
    tricky_text,
    timestamp_texts().map(lambda case: case[0]),
    st.lists(st.text(max_size=3), max_size=3),
)


@given(st.lists(record_values, max_size=20))
def test_sort_key_is_a_total_order(values: list[object]) -> None:
    ordered = sorted(values, key=sort_key)  # must not raise on any mix of types
    keys = [sort_key(value) for value in ordered]
    assert keys == sorted(keys)
    nones = [value for value in ordered if value is None]
    assert ordered[: len(nones)] == nones
