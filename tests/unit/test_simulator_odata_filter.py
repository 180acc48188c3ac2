"""Unit tests for the simulator's OData option parser and $filter evaluator."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from trestle_simulator.odata_filter import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Call,
    Compare,
    EnumLiteral,
    ExpandItem,
    Field,
    Has,
    Literal,
    Not,
    ODataSyntaxError,
    Or,
    Timestamp,
    evaluate,
    fields_referenced,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_timestamp,
    sort_key,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ticks_of(moment: dt.datetime, seventh_digit: int = 0) -> int:
    """Oracle: ticks from Python's own calendar arithmetic (microseconds * 10 + 7th digit)."""
    return ((moment - EPOCH) // dt.timedelta(microseconds=1)) * 10 + seventh_digit


def cmp(op: str, name: str, kind: str, value: object) -> Compare:
    return Compare(op, Field(name), Literal(kind, value))


A1 = cmp("eq", "A", "int", 1)
B2 = cmp("eq", "B", "int", 2)
C3 = cmp("eq", "C", "int", 3)
D4 = cmp("eq", "D", "int", 4)

# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1970-01-01T00:00:00Z", 0, id="epoch"),
        pytest.param("1970-01-01T00:00:00.0000001Z", 1, id="one-tick"),
        pytest.param("1969-12-31T23:59:59.9999999Z", -1, id="before-epoch"),
        pytest.param("1970-01-01T01:00:00+01:00", 0, id="positive-offset"),
        pytest.param(
            "2020-10-31T13:30:30.1234567-05:00",
            ticks_of(dt.datetime(2020, 10, 31, 18, 30, 30, 123456, tzinfo=dt.UTC), 7),
            id="seven-digits-negative-offset",
        ),
        pytest.param(
            "2020-10-31T13:30:30.1234-05:00",
            ticks_of(dt.datetime(2020, 10, 31, 18, 30, 30, 123400, tzinfo=dt.UTC)),
            id="four-digits-from-facts",
        ),
        pytest.param(
            "2024-02-29T23:59:59.5+14:00",
            ticks_of(dt.datetime(2024, 2, 29, 9, 59, 59, 500000, tzinfo=dt.UTC)),
            id="leap-day-max-offset",
        ),
        pytest.param(
            "0001-01-01T00:00:00Z",
            ticks_of(dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
            id="year-one",
        ),
        pytest.param(
            "9999-12-31T23:59:59.9999999Z",
            ticks_of(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), 9),
            id="year-9999",
        ),
    ],
)
def test_parse_timestamp_ticks(text: str, expected: int) -> None:
    stamp = parse_timestamp(text)
    assert stamp.ticks == expected
    assert stamp.text == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("2020-01-01T00:00:00.12345678Z", "more than 7 fractional", id="8-digits"),
        pytest.param("2020-01-01T00:00:00", "no offset", id="no-offset"),
        pytest.param("2020-01-01T00:00:00.5", "no offset", id="fraction-no-offset"),
        pytest.param("2020-01-01T00:00Z", "invalid timestamp", id="no-seconds"),
        pytest.param("2020-01-01t00:00:00z", "invalid timestamp", id="lowercase"),
        pytest.param("2020-01-01 00:00:00Z", "invalid timestamp", id="space-separator"),
        pytest.param("2020-1-01T00:00:00Z", "invalid timestamp", id="short-month"),
        pytest.param("2020-13-01T00:00:00Z", "not a valid date", id="month-13"),
        pytest.param("2023-02-29T00:00:00Z", "not a valid date", id="not-leap-year"),
        pytest.param("2020-01-01T24:00:00Z", "not a valid date", id="hour-24"),
        pytest.param("2020-01-01T00:00:60Z", "not a valid date", id="leap-second"),
        pytest.param("0000-01-01T00:00:00Z", "not a valid date", id="year-zero"),
        pytest.param("2020-01-01T00:00:00+14:01", "invalid offset", id="offset-over-14h"),
        pytest.param("2020-01-01T00:00:00+05:60", "invalid offset", id="offset-minutes-60"),
        pytest.param("2020-01-01T00:00:00.Z", "invalid timestamp", id="empty-fraction"),
        pytest.param("", "invalid timestamp", id="empty"),
        pytest.param("٢٠٢٠-01-01T00:00:00Z", "invalid timestamp", id="non-ascii-digits"),
    ],
)
def test_parse_timestamp_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_timestamp(text)
    assert fragment in str(info.value)


def test_timestamp_identity_is_the_instant() -> None:
    utc = parse_timestamp("2020-01-01T00:00:00Z")
    eastern = parse_timestamp("2019-12-31T19:00:00.0000000-05:00")
    later = parse_timestamp("2020-01-01T00:00:00.0000001Z")
    assert utc == eastern
    assert hash(utc) == hash(eastern)
    assert len({utc, eastern, later}) == 2
    assert utc < later and later > eastern
    assert sorted([later, eastern]) == [eastern, later]
    assert str(eastern) == "2019-12-31T19:00:00.0000000-05:00"


@pytest.mark.parametrize(
    ("ticks", "text"),
    [
        pytest.param(0, "1970-01-01T00:00:00.0000000Z", id="epoch"),
        pytest.param(-1, "1969-12-31T23:59:59.9999999Z", id="minus-one"),
        pytest.param(16041690301234567, "2020-10-31T18:30:30.1234567Z", id="seven-digits"),
    ],
)
def test_timestamp_from_ticks_is_canonical_utc(ticks: int, text: str) -> None:
    stamp = Timestamp.from_ticks(ticks)
    assert stamp.text == text
    assert parse_timestamp(stamp.text).ticks == ticks


# --------------------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        pytest.param("'Austin'", Literal("string", "Austin"), id="string"),
        pytest.param("''", Literal("string", ""), id="empty-string"),
        pytest.param("'O''Brien'", Literal("string", "O'Brien"), id="doubled-quote"),
        pytest.param("''''", Literal("string", "'"), id="only-a-quote"),
        pytest.param(
            "'a&b#c=d%20e;f(g)h,i\nj'",
            Literal("string", "a&b#c=d%20e;f(g)h,i\nj"),
            id="url-and-grammar-characters",
        ),
        pytest.param("'Zürich 漢字 😀'", Literal("string", "Zürich 漢字 😀"), id="non-ascii"),
        pytest.param("' eq ''x'' or '", Literal("string", " eq 'x' or "), id="keywords-inside"),
        pytest.param("42", Literal("int", 42), id="int"),
        pytest.param("-7", Literal("int", -7), id="negative-int"),
        pytest.param("0", Literal("int", 0), id="zero"),
        pytest.param("12.50", Literal("decimal", Decimal("12.50")), id="decimal"),
        pytest.param("-0.5", Literal("decimal", Decimal("-0.5")), id="negative-decimal"),
        pytest.param("1.5e3", Literal("double", 1500.0), id="double"),
        pytest.param("1E-2", Literal("double", 0.01), id="double-upper-e"),
        pytest.param("2e+20", Literal("double", 2e20), id="double-plus-exponent"),
        pytest.param("true", Literal("bool", True), id="true"),
        pytest.param("false", Literal("bool", False), id="false"),
        pytest.param("null", Literal("null", None), id="null"),
        pytest.param("2024-01-31", Literal("date", dt.date(2024, 1, 31)), id="date"),
        pytest.param(
            "Ns.Enums.Appliances'BarFridge'",
            Literal("enum", EnumLiteral("Ns.Enums.Appliances", ("BarFridge",))),
            id="enum",
        ),
        pytest.param(
            "Ns.Enums.Appliances'BarFridge,Dishwasher'",
            Literal("enum", EnumLiteral("Ns.Enums.Appliances", ("BarFridge", "Dishwasher"))),
            id="enum-multi",
        ),
        pytest.param(
            "Ns.T'A, B'",
            Literal("enum", EnumLiteral("Ns.T", ("A", "B"))),
            id="enum-multi-space-after-comma",
        ),
    ],
)
def test_literal_values(literal: str, expected: Literal) -> None:
    parsed = parse_filter(f"X eq {literal}")
    assert parsed == Compare("eq", Field("X"), expected)
    assert type(parsed.right.value) is type(expected.value)  # true is not 1, 12.50 not float


def test_decimal_literal_is_exact() -> None:
    value = parse_filter("ListPrice eq 0.1").right.value
    assert value == Decimal("0.1")
    assert str(parse_filter("ListPrice eq 12.50").right.value) == "12.50"


def test_timestamp_literal_keeps_text_and_ticks() -> None:
    literal = parse_filter("ModificationTimestamp gt 2020-10-31T13:30:30.1234567-05:00").right
    assert literal.kind == "datetimeoffset"
    assert literal.value.text == "2020-10-31T13:30:30.1234567-05:00"
    assert literal.value == parse_timestamp("2020-10-31T18:30:30.1234567Z")


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A eq 1", A1, id="comparison"),
        pytest.param("A eq 1 or B eq 2 and C eq 3", Or(A1, And(B2, C3)), id="and-before-or"),
        pytest.param("(A eq 1 or B eq 2) and C eq 3", And(Or(A1, B2), C3), id="parentheses"),
        pytest.param("A eq 1 and B eq 2 and C eq 3", And(And(A1, B2), C3), id="three-and"),
        pytest.param(
            "A eq 1 or B eq 2 or C eq 3 or D eq 4",
            Or(Or(A1, B2), Or(C3, D4)),
            id="chain-built-balanced",
        ),
        pytest.param("not (A eq 1) and B eq 2", And(Not(A1), B2), id="not-binds-tightest"),
        pytest.param("not(A eq 1)", Not(A1), id="not-paren-without-space"),
        pytest.param("not not (A eq 1)", Not(Not(A1)), id="double-not"),
        pytest.param("  A  eq\t1  ", A1, id="extra-whitespace"),
        pytest.param("((A eq 1))", A1, id="redundant-parentheses"),
        pytest.param("1 eq A", Compare("eq", Literal("int", 1), Field("A")), id="literal-left"),
        pytest.param("A eq B", Compare("eq", Field("A"), Field("B")), id="field-field"),
        pytest.param("A eq null", cmp("eq", "A", "null", None), id="eq-null"),
        pytest.param(
            "contains(City,'Aus')",
            Call("contains", (Field("City"), Literal("string", "Aus"))),
            id="bare-function",
        ),
        pytest.param(
            "startswith(City, 'A') and endswith(City, 'n')",
            And(
                Call("startswith", (Field("City"), Literal("string", "A"))),
                Call("endswith", (Field("City"), Literal("string", "n"))),
            ),
            id="functions-with-spaces",
        ),
        pytest.param(
            "contains(City,'x') eq true",
            Compare(
                "eq",
                Call("contains", (Field("City"), Literal("string", "x"))),
                Literal("bool", True),
            ),
            id="function-eq-true",
        ),
        pytest.param(
            "not contains(City,'x')",
            Not(Call("contains", (Field("City"), Literal("string", "x")))),
            id="not-function",
        ),
        pytest.param(
            "tolower(City) eq 'austin'",
            Compare("eq", Call("tolower", (Field("City"),)), Literal("string", "austin")),
            id="tolower",
        ),
        pytest.param(
            "contains(toupper(City),'AUS')",
            Call("contains", (Call("toupper", (Field("City"),)), Literal("string", "AUS"))),
            id="nested-call",
        ),
        pytest.param(
            "Appliances has Ns.Enums.Appliances'BarFridge'",
            Has(
                Field("Appliances"),
                Literal("enum", EnumLiteral("Ns.Enums.Appliances", ("BarFridge",))),
            ),
            id="has-enum",
        ),
        pytest.param(
            "Appliances has 'BarFridge'",
            Has(Field("Appliances"), Literal("string", "BarFridge")),
            id="has-string",
        ),
        pytest.param(
            "A eq 1 and Appliances has Ns.T'X' or B eq 2",
            Or(And(A1, Has(Field("Appliances"), Literal("enum", EnumLiteral("Ns.T", ("X",))))), B2),
            id="has-binds-like-comparison",
        ),
        pytest.param(
            "(T gt 2020-01-01T00:00:00Z) or ((T eq 2020-01-01T00:00:00Z) and (K gt 'k'))",
            Or(
                cmp("gt", "T", "datetimeoffset", parse_timestamp("2020-01-01T00:00:00Z")),
                And(
                    cmp("eq", "T", "datetimeoffset", parse_timestamp("2020-01-01T00:00:00Z")),
                    cmp("gt", "K", "string", "k"),
                ),
            ),
            id="keyset-filter-as-the-client-writes-it",
        ),
    ],
)
def test_parse_filter_structure(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        pytest.param("", "empty filter", 0, id="empty"),
        pytest.param("   ", "empty filter", 3, id="blank"),
        pytest.param("A eq 'x", "unterminated string", 5, id="unterminated-string"),
        pytest.param("A eq 'O''", "unterminated string", 5, id="unterminated-after-doubled"),
        pytest.param("A eq", "unexpected end of input", 4, id="missing-operand"),
        pytest.param("A eq 1 xx", "unexpected token 'xx'", 7, id="trailing-garbage"),
        pytest.param("A eq 1)", "unbalanced", 6, id="extra-close"),
        pytest.param("(A eq 1", "expected ')'", 7, id="missing-close"),
        pytest.param("()", "unexpected token ')'", 1, id="empty-parentheses"),
        pytest.param("A EQ 1", "keywords are lowercase", 2, id="uppercase-operator"),
        pytest.param("A eq 1 AND B eq 2", "keywords are lowercase", 7, id="uppercase-and"),
        pytest.param("A like 'x'", "unexpected token 'like'", 2, id="unknown-operator"),
        pytest.param("A add 1 eq 2", "unexpected token 'add'", 2, id="arithmetic"),
        pytest.param("A == 1", "unexpected character '='", 2, id="symbolic-operator"),
        pytest.param("A eq'x'", "must be surrounded by spaces", 2, id="no-space-after-op"),
        pytest.param("(A eq 1)and(B eq 2)", "must be surrounded by spaces", 8, id="no-space-and"),
        pytest.param("not'x'", "followed by a space", 0, id="no-space-after-not"),
        pytest.param("foo(A)", "unknown function 'foo'", 0, id="unknown-function"),
        pytest.param("Contains(A,'x')", "function names are lowercase", 0, id="capital-function"),
        pytest.param("substringof('x',A)", "unknown function", 0, id="odata-v3-function"),
        pytest.param("contains(A)", "takes 2 arguments, got 1", 0, id="too-few-args"),
        pytest.param("tolower(A,'x') eq 'a'", "takes 1 argument, got 2", 0, id="too-many-args"),
        pytest.param("contains(A,5)", "text arguments", 11, id="number-argument"),
        pytest.param("contains(A eq 1,'x')", "expected ',' or ')'", 11, id="condition-argument"),
        pytest.param("contains((A eq 1),'x')", "text arguments", 9, id="parenthesised-condition"),
        pytest.param("contains(A,'x'", "expected ',' or ')'", 14, id="unclosed-call"),
        pytest.param("A", "expected a condition", 0, id="bare-field"),
        pytest.param("true", "expected a condition", 0, id="bare-literal"),
        pytest.param("tolower(A)", "expected a condition", 0, id="bare-text-function"),
        pytest.param("A and B eq 1", "around 'and'", 0, id="field-operand-of-and"),
        pytest.param("not A eq 1", "not (A eq 1)", 4, id="not-without-parentheses"),
        pytest.param("(A eq 1) eq true", "found a condition", 0, id="condition-compared"),
        pytest.param("A eq 1 eq 2", "unexpected token 'eq'", 7, id="chained-comparison"),
        pytest.param("'x' has Ns.T'A'", "property on its left", 0, id="has-literal-left"),
        pytest.param("A has 1", "enumeration literal", 6, id="has-number"),
        pytest.param("A has ''", "invalid enumeration member", 6, id="has-empty-string"),
        pytest.param("A eq Ns.T'x y'", "invalid enumeration member", 9, id="enum-bad-member"),
        pytest.param("A eq Ns.T'A,'", "invalid enumeration member", 9, id="enum-empty-member"),
        pytest.param("A eq duration'P1D'", "typed literal", 5, id="typed-literal"),
        pytest.param("A eq Appliances'X'", "typed literal", 5, id="unqualified-enum"),
        pytest.param("A.B eq 1", "unexpected '.'", 1, id="dotted-name"),
        pytest.param("A eq 1.", "malformed literal", 5, id="trailing-dot"),
        pytest.param("A eq 1.5.2", "malformed literal", 5, id="two-dots"),
        pytest.param("A eq 12abc", "malformed literal", 5, id="number-then-letters"),
        pytest.param("A eq .5", "unexpected character '.'", 5, id="leading-dot"),
        pytest.param("A eq 1e999", "out of range", 5, id="double-overflow"),
        pytest.param("A eq -B", "unexpected character '-'", 5, id="unary-minus"),
        pytest.param("A eq 2024-02-30", "invalid date", 5, id="invalid-date"),
        pytest.param("A eq 2024-01", "malformed literal", 5, id="partial-date"),
        pytest.param("A eq 2020-01-01T00:00:00", "no offset", 5, id="timestamp-no-offset"),
        pytest.param("A eq 2020-01-01T00:00Z", "invalid timestamp", 5, id="timestamp-no-seconds"),
        pytest.param(
            "A eq 2020-01-01T00:00:00.12345678Z", "more than 7", 5, id="timestamp-8-digits"
        ),
        pytest.param("$it eq 1", "unexpected character '$'", 0, id="dollar"),
        pytest.param("and eq 1", "keyword 'and'", 0, id="keyword-as-operand"),
    ],
)
def test_parse_filter_errors(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_filter(text)
    error = info.value
    assert fragment in str(error)
    assert error.position == position
    assert str(error).endswith(f"at position {position} in $filter")
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Media/Order eq 1", id="navigation-path"),
        pytest.param("OpenHouse/any(o: o/OpenHouseDate gt 2024-01-01)", id="any-lambda"),
        pytest.param("Media/all(m: m/Order lt 3)", id="all-lambda"),
        pytest.param("any(o: o/X eq 1)", id="bare-any"),
        pytest.param("contains(Media/MediaURL,'x')", id="path-in-function"),
    ],
)
def test_lambda_and_navigation_are_refused(text: str) -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_filter(text)
    message = str(info.value)
    assert "lambda" in message and "navigation" in message and "not supported" in message


def test_error_message_is_short_for_long_tokens() -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_filter("A eq 1 " + "x" * 5000)
    assert len(str(info.value)) < 200


# --------------------------------------------------------------------------- limits


def nested_parentheses(levels: int) -> str:
    return "(" * levels + "A eq 1" + ")" * levels


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(nested_parentheses(MAX_DEPTH + 1), id="parentheses-just-over"),
        pytest.param(nested_parentheses(5000), id="parentheses-5000"),
        pytest.param("not " * 5000 + "(A eq 1)", id="not-5000"),
        pytest.param("tolower(" * 3000 + "A" + ")" * 3000 + " eq 'a'", id="calls-3000"),
        pytest.param("(A eq 1 and " * 2000 + "B eq 2" + ")" * 2000, id="and-nesting-2000"),
    ],
)
def test_deep_nesting_is_a_syntax_error_not_recursion_error(text: str) -> None:
    with pytest.raises(ODataSyntaxError, match="nested too deeply"):
        parse_filter(text)


def test_nesting_up_to_the_limit_parses() -> None:
    assert parse_filter(nested_parentheses(MAX_DEPTH)) == A1


def test_long_key_list_parses_and_evaluates() -> None:
    keys = [f"K{i:05d}" for i in range(2000)]
    text = " or ".join(f"ListingKey eq '{k}'" for k in keys)
    assert len(text) < MAX_LENGTH
    expr = parse_filter(text)
    assert fields_referenced(expr) == {"ListingKey"}
    assert evaluate(expr, {"ListingKey": "K01999"}) is True
    assert evaluate(expr, {"ListingKey": "K00000"}) is True
    assert evaluate(expr, {"ListingKey": "K02000"}) is False


@pytest.mark.parametrize(
    "parse",
    [
        pytest.param(parse_filter, id="filter"),
        pytest.param(parse_orderby, id="orderby"),
        pytest.param(parse_select, id="select"),
        pytest.param(parse_expand, id="expand"),
    ],
)
def test_length_limit(parse) -> None:
    with pytest.raises(ODataSyntaxError, match="too long"):
        parse("A" * (MAX_LENGTH + 1))


# --------------------------------------------------------------------------- fields_referenced


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A eq 1", {"A"}, id="one"),
        pytest.param("A eq B", {"A", "B"}, id="both-sides"),
        pytest.param("1 eq A", {"A"}, id="literal-left"),
        pytest.param("not (A eq 1) or (B gt 2 and C lt 3)", {"A", "B", "C"}, id="nested"),
        pytest.param("contains(tolower(City),'x')", {"City"}, id="in-functions"),
        pytest.param("Appliances has Ns.T'X'", {"Appliances"}, id="has"),
        pytest.param("A eq 'B'", {"A"}, id="string-is-not-a-field"),
        pytest.param("A eq Ns.Enums.B'C'", {"A"}, id="enum-type-is-not-a-field"),
        pytest.param("A eq true or A eq null", {"A"}, id="keywords-are-not-fields"),
    ],
)
def test_fields_referenced(text: str, expected: set[str]) -> None:
    assert fields_referenced(parse_filter(text)) == frozenset(expected)


# --------------------------------------------------------------------------- evaluate

RECORD = {
    "Missing": None,
    "Int": 5,
    "Price": Decimal("12.50"),
    "Float": 1.5,
    "Flag": True,
    "City": "Austin",
    "Accent": "é",
    "Modified": "2020-10-31T13:30:30.1234567-05:00",
    "Garbage": "not a timestamp",
    "Day": "2024-01-31",
    "Status": "Active",
    "Appliances": "BarFridge,Dishwasher",
    "ApplianceList": ["Oven", "Range"],
    "Empty": "",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # OData null semantics
        pytest.param("Missing eq null", True, id="null-eq-null"),
        pytest.param("Missing ne null", False, id="null-ne-null"),
        pytest.param("Int eq null", False, id="value-eq-null"),
        pytest.param("Int ne null", True, id="value-ne-null"),
        pytest.param("Absent eq null", True, id="absent-key-is-null"),
        pytest.param("Missing eq 1", False, id="null-eq-value"),
        pytest.param("Missing ne 1", True, id="null-ne-value"),
        pytest.param("Missing gt 1", False, id="null-gt"),
        pytest.param("Missing ge 1", False, id="null-ge"),
        pytest.param("Missing lt 1", False, id="null-lt"),
        pytest.param("Missing le 1", False, id="null-le"),
        pytest.param("not (Missing gt 1)", True, id="not-of-false-null-comparison"),
        pytest.param("Int gt null", False, id="gt-null-literal"),
        # numbers across int / Decimal / float
        pytest.param("Int eq 5", True, id="int-eq"),
        pytest.param("Int eq 5.0", True, id="int-eq-decimal"),
        pytest.param("Int lt 5.5", True, id="int-lt-decimal"),
        pytest.param("Int gt 4.5e0", True, id="int-gt-double"),
        pytest.param("Price eq 12.5", True, id="decimal-trailing-zero"),
        pytest.param("Price ge 12.50", True, id="decimal-ge"),
        pytest.param("Price gt 12.49", True, id="decimal-gt"),
        pytest.param("Price lt 13", True, id="decimal-lt-int"),
        pytest.param("Float eq 1.5", True, id="float-eq-decimal"),
        pytest.param("Float le 1.5e0", True, id="float-le-double"),
        pytest.param("Int eq '5'", False, id="number-vs-string"),
        pytest.param("Int ne '5'", False, id="number-ne-string-is-not-comparable"),
        # booleans are not numbers
        pytest.param("Flag eq true", True, id="bool-eq"),
        pytest.param("Flag ne false", True, id="bool-ne"),
        pytest.param("Flag eq 1", False, id="bool-is-not-1"),
        pytest.param("Int eq true", False, id="int-is-not-true"),
        # strings: case-sensitive, by code point
        pytest.param("City eq 'Austin'", True, id="string-eq"),
        pytest.param("City eq 'austin'", False, id="string-case-sensitive"),
        pytest.param("City gt 'Aus'", True, id="prefix-sorts-first"),
        pytest.param("City lt 'a'", True, id="uppercase-before-lowercase"),
        pytest.param("Accent gt 'z'", True, id="code-point-order"),
        # timestamps: parsed, compared by ticks, offsets applied
        pytest.param("Modified eq 2020-10-31T18:30:30.1234567Z", True, id="ts-eq-other-offset"),
        pytest.param("Modified gt 2020-10-31T18:30:30.1234566Z", True, id="ts-seventh-digit-gt"),
        pytest.param("Modified lt 2020-10-31T18:30:30.1234568Z", True, id="ts-seventh-digit-lt"),
        pytest.param("Modified ge 2020-10-31T13:30:30.1234567-05:00", True, id="ts-ge-same"),
        pytest.param("Modified gt 2020-10-31T19:00:00+01:00", True, id="ts-offset-changes-order"),
        pytest.param("2020-01-01T00:00:00Z lt Modified", True, id="ts-literal-on-left"),
        pytest.param("Garbage eq 2020-01-01T00:00:00Z", False, id="unparseable-ts-eq"),
        pytest.param("Garbage ne 2020-01-01T00:00:00Z", False, id="unparseable-ts-ne"),
        pytest.param("Garbage gt 2020-01-01T00:00:00Z", False, id="unparseable-ts-gt"),
        pytest.param("Int gt 2020-01-01T00:00:00Z", False, id="number-vs-ts"),
        pytest.param("Day gt 2020-01-01T00:00:00Z", False, id="date-string-vs-ts"),
        # dates
        pytest.param("Day eq 2024-01-31", True, id="date-eq"),
        pytest.param("Day lt 2024-02-01", True, id="date-lt"),
        pytest.param("Day gt 2023-12-31", True, id="date-gt"),
        pytest.param("Modified eq 2020-10-31", False, id="ts-string-vs-date"),
        # enumerations
        pytest.param("Status eq Ns.Enums.StandardStatus'Active'", True, id="enum-eq"),
        pytest.param("Status ne Ns.Enums.StandardStatus'Active'", False, id="enum-ne"),
        pytest.param("Status eq Ns.Enums.StandardStatus'Closed'", False, id="enum-eq-other"),
        pytest.param("Status gt Ns.Enums.StandardStatus'A'", False, id="enum-has-no-order"),
        pytest.param("Status eq 'Active'", True, id="enum-field-vs-string"),
        pytest.param("Appliances has Ns.T'BarFridge'", True, id="has-one"),
        pytest.param("Appliances has Ns.T'Dishwasher,BarFridge'", True, id="has-all-of-two"),
        pytest.param("Appliances has Ns.T'BarFridge,Oven'", False, id="has-needs-every-member"),
        pytest.param("Appliances has Ns.T'Bar'", False, id="has-is-not-substring"),
        pytest.param("Appliances has 'Dishwasher'", True, id="has-string"),
        pytest.param("ApplianceList has Ns.T'Range'", True, id="has-list"),
        pytest.param("ApplianceList has Ns.T'Range,Oven'", True, id="has-list-two"),
        pytest.param("Missing has Ns.T'X'", False, id="has-null"),
        pytest.param("Empty has Ns.T'X'", False, id="has-empty"),
        pytest.param("Int has Ns.T'X'", False, id="has-number"),
        pytest.param("Appliances eq Ns.T'Dishwasher,BarFridge'", True, id="flags-eq-as-set"),
        pytest.param("Appliances eq Ns.T'BarFridge'", False, id="flags-eq-subset"),
        # string functions
        pytest.param("contains(City,'sti')", True, id="contains"),
        pytest.param("contains(City,'STI')", False, id="contains-case-sensitive"),
        pytest.param("contains(City,'')", True, id="contains-empty"),
        pytest.param("startswith(City,'Aus')", True, id="startswith"),
        pytest.param("endswith(City,'tin')", True, id="endswith"),
        pytest.param("endswith(City,'Aus')", False, id="endswith-false"),
        pytest.param("contains(Missing,'x')", False, id="contains-null"),
        pytest.param("startswith(Missing,'x')", False, id="startswith-null"),
        pytest.param("endswith(Int,'5')", False, id="endswith-number"),
        pytest.param("tolower(City) eq 'austin'", True, id="tolower"),
        pytest.param("toupper(City) eq 'AUSTIN'", True, id="toupper"),
        pytest.param("contains(tolower(City),'aus')", True, id="contains-tolower"),
        pytest.param("tolower(Missing) eq null", True, id="tolower-null-is-null"),
        pytest.param("contains(City,'x') eq false", True, id="function-eq-false"),
        pytest.param("contains(City,'A') eq true", True, id="function-eq-true"),
        # logic, including unknown (null) results of string functions
        pytest.param("not contains(City,'x')", True, id="not-function"),
        pytest.param("not contains(Missing,'x')", False, id="not-unknown-excludes"),
        pytest.param("contains(Missing,'x') eq false", False, id="unknown-eq-false"),
        pytest.param("contains(Missing,'x') or Int eq 5", True, id="unknown-or-true"),
        pytest.param("contains(Missing,'x') or Int eq 6", False, id="unknown-or-false"),
        pytest.param("contains(Missing,'x') and Int eq 6", False, id="unknown-and-false"),
        pytest.param("not (contains(Missing,'x') and Int eq 6)", True, id="not-false-and"),
        pytest.param("Int eq 5 and City eq 'Austin'", True, id="and-true"),
        pytest.param("Int eq 5 and City eq 'Dallas'", False, id="and-false"),
        pytest.param("Int eq 6 or City eq 'Austin'", True, id="or-true"),
        pytest.param("not (Int eq 5)", False, id="not"),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    assert evaluate(parse_filter(text), RECORD) is expected


def test_evaluate_accepts_timestamp_objects_and_aware_datetimes() -> None:
    expr = parse_filter("T eq 2020-01-01T00:00:00Z")
    assert evaluate(expr, {"T": parse_timestamp("2019-12-31T18:00:00-06:00")}) is True
    assert evaluate(expr, {"T": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}) is True
    assert evaluate(expr, {"T": dt.datetime(2020, 1, 1)}) is False  # naive: no instant


def test_evaluate_does_not_recurse_on_field_names_only_present() -> None:
    expr = parse_filter("A eq 1")
    assert evaluate(expr, {}) is False
    assert evaluate(expr, {"A": 1, "Other": "x"}) is True


# --------------------------------------------------------------------------- $orderby


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("ListingKey", [("ListingKey", False)], id="default-asc"),
        pytest.param(
            "ModificationTimestamp asc,ListingKey desc",
            [("ModificationTimestamp", False), ("ListingKey", True)],
            id="two-keys",
        ),
        pytest.param("A desc , B", [("A", True), ("B", False)], id="spaces-around-comma"),
        pytest.param("  A   asc  ", [("A", False)], id="padding"),
    ],
)
def test_parse_orderby(text: str, expected: list[tuple[str, bool]]) -> None:
    assert parse_orderby(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        pytest.param("", "expected a property name", 0, id="empty"),
        pytest.param("A,", "expected a property name", 2, id="trailing-comma"),
        pytest.param(",A", "unexpected token ','", 0, id="leading-comma"),
        pytest.param("A,,B", "unexpected token ','", 2, id="empty-item"),
        pytest.param("A B", "unexpected token 'B'", 2, id="missing-comma"),
        pytest.param("A DESC", "keywords are lowercase", 2, id="uppercase-direction"),
        pytest.param("A asc desc", "unexpected token 'desc'", 6, id="two-directions"),
        pytest.param("A,A desc", "duplicate property 'A'", 2, id="duplicate"),
        pytest.param("Media/Order", "navigation paths", 5, id="path"),
        pytest.param("tolower(A)", "functions are not supported", 0, id="function"),
        pytest.param("'A'", "unexpected token", 0, id="string"),
    ],
)
def test_parse_orderby_errors(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_orderby(text)
    assert fragment in str(info.value)
    assert str(info.value).endswith(f"at position {position} in $orderby")


# --------------------------------------------------------------------------- $select


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("ListingKey", ["ListingKey"], id="one"),
        pytest.param("A, B,C", ["A", "B", "C"], id="spaces"),
        pytest.param("*", ["*"], id="star"),
        pytest.param("A,A", ["A", "A"], id="duplicates-kept-as-written"),
    ],
)
def test_parse_select(text: str, expected: list[str]) -> None:
    assert parse_select(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        pytest.param("", "expected a property name", 0, id="empty"),
        pytest.param("A,,B", "unexpected token ','", 2, id="empty-item"),
        pytest.param("A,", "expected a property name", 2, id="trailing-comma"),
        pytest.param("A B", "unexpected token 'B'", 2, id="missing-comma"),
        pytest.param("Media/MediaURL", "navigation paths", 5, id="path"),
        pytest.param("A;B", "unexpected character ';'", 1, id="semicolon"),
    ],
)
def test_parse_select_errors(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_select(text)
    assert fragment in str(info.value)
    assert str(info.value).endswith(f"at position {position} in $select")


# --------------------------------------------------------------------------- $expand


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Media", [ExpandItem("Media", None, None, None, None, None)], id="bare"),
        pytest.param(
            "Media($select=MediaURL,Order;$orderby=Order;$top=5;$filter=Order lt 3),OpenHouse",
            [
                ExpandItem(
                    "Media",
                    select=["MediaURL", "Order"],
                    filter=cmp("lt", "Order", "int", 3),
                    orderby=[("Order", False)],
                    top=5,
                ),
                ExpandItem("OpenHouse"),
            ],
            id="all-options",
        ),
        pytest.param(
            "Media($skip=2;$top=0)", [ExpandItem("Media", top=0, skip=2)], id="skip-and-top-zero"
        ),
        pytest.param(
            "Media($filter=MediaURL eq 'a;b)c(''d')",
            [ExpandItem("Media", filter=cmp("eq", "MediaURL", "string", "a;b)c('d"))],
            id="filter-string-with-separators",
        ),
        pytest.param(
            "Media($filter=(Order lt 3) and (Order gt 0))",
            [
                ExpandItem(
                    "Media", filter=And(cmp("lt", "Order", "int", 3), cmp("gt", "Order", "int", 0))
                )
            ],
            id="filter-with-parentheses",
        ),
        pytest.param(
            " Media( $select=MediaURL ; $orderby=Order desc ) , OpenHouse ",
            [
                ExpandItem("Media", select=["MediaURL"], orderby=[("Order", True)]),
                ExpandItem("OpenHouse"),
            ],
            id="whitespace",
        ),
    ],
)
def test_parse_expand(text: str, expected: list[ExpandItem]) -> None:
    assert parse_expand(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        pytest.param("", "empty $expand", 0, id="empty"),
        pytest.param("Media,", "expected a navigation property name", 6, id="trailing-comma"),
        pytest.param("Media(", "unbalanced '('", 5, id="unclosed"),
        pytest.param("Media()", "expected an option", 6, id="no-options"),
        pytest.param("Media($top=5;)", "expected an option", 13, id="empty-option"),
        pytest.param("Media($top=5))", "unexpected character ')'", 13, id="extra-close"),
        pytest.param("Media($top=-1)", "non-negative integer", 11, id="negative-top"),
        pytest.param("Media($skip=x)", "non-negative integer", 12, id="bad-skip"),
        pytest.param("Media($expand=X)", "not supported inside $expand", 6, id="nested-expand"),
        pytest.param("Media($count=true)", "not supported inside $expand", 6, id="count"),
        pytest.param("Media(select=A)", "expected an option", 6, id="no-dollar"),
        pytest.param("Media($select=A;$select=B)", "duplicate option $select", 16, id="dup-opt"),
        pytest.param("Media,Media", "expanded twice", 6, id="duplicate-item"),
        pytest.param("Media/X", "not supported", 5, id="path"),
        pytest.param("*", "expected a navigation property name", 0, id="star"),
        pytest.param("Media($select=)", "expected a property name", 14, id="empty-select"),
        pytest.param("Media($filter=A eq 'x)", "unterminated string", 19, id="unterminated"),
        pytest.param("Media($filter=A eq)", "unexpected end of input", 18, id="bad-filter"),
        pytest.param("Media($filter=A/any(x: x eq 1))", "lambda", 15, id="lambda-filter"),
        pytest.param("Media($orderby=A,A)", "duplicate property", 17, id="bad-orderby"),
    ],
)
def test_parse_expand_errors(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ODataSyntaxError) as info:
        parse_expand(text)
    assert fragment in str(info.value)
    assert str(info.value).endswith(f"at position {position} in $expand")


# --------------------------------------------------------------------------- sort_key


def test_sort_key_orders_a_mixed_column() -> None:
    values = [
        "b",
        None,
        Decimal("2.5"),
        "2020-01-01T00:00:00Z",
        3,
        float("nan"),
        "2019-12-31T23:00:00-02:00",  # 2020-01-01T01:00Z: after the Z one despite its text
        "B",
        1.0,
        True,
        "é",
        "2024-01-31",
    ]
    ordered = sorted(values, key=sort_key)
    assert ordered[0] is None
    assert ordered[1] is True
    assert ordered[2:5] == [1.0, Decimal("2.5"), 3]
    assert ordered[5] != ordered[5]  # NaN after every number
    assert ordered[6:8] == ["2020-01-01T00:00:00Z", "2019-12-31T23:00:00-02:00"]
    assert ordered[8:] == ["2024-01-31", "B", "b", "é"]


def test_sort_key_same_instant_is_equal_and_descending_puts_none_last() -> None:
    assert sort_key("2020-01-01T00:00:00Z") == sort_key("2019-12-31T19:00:00.0000000-05:00")
    assert sort_key("2020-01-01T00:00:00.0000001Z") > sort_key("2020-01-01T00:00:00Z")
    assert sort_key(parse_timestamp("2020-01-01T00:00:00Z")) == sort_key("2020-01-01T00:00:00Z")
    assert sorted(["x", None, "a"], key=sort_key, reverse=True) == ["x", "a", None]


def test_sort_key_multi_key_stable_sort() -> None:
    rows = [
        {"T": "2020-01-01T00:00:00Z", "K": "b"},
        {"T": "2020-01-01T00:00:00.0000001Z", "K": "a"},
        {"T": "2019-12-31T19:00:00-05:00", "K": "a"},
        {"T": None, "K": "z"},
    ]
    for name, descending in reversed(parse_orderby("T asc,K desc")):
        rows.sort(key=lambda row, name=name: sort_key(row[name]), reverse=descending)
    assert [row["K"] for row in rows] == ["z", "b", "a", "a"]
    assert rows[3]["T"] == "2020-01-01T00:00:00.0000001Z"
