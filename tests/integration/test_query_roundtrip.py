"""Query construction: the simulator reads back exactly what the builder wrote.

The simulator has its own parser (it shares no code with the pipeline), so agreement here
means the builder's quoting and encoding are right, not that one module agrees with itself.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trestle_simulator import odata_filter as sim_parser
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.trestle import query as q

from .conftest import build_client

pytestmark = pytest.mark.integration

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
timestamps = st.integers(
    ODataTimestamp.parse("1900-01-01T00:00:00Z").ticks,
    ODataTimestamp.parse("2999-12-31T23:59:59.9999999Z").ticks,
).map(ODataTimestamp)
values = st.one_of(
    texts,
    st.integers(-(2**63), 2**63 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**12),
                max_value=10**12),
    st.booleans(),
    st.none(),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)),
    timestamps,
)
operators = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])


def filter_sent(url: str) -> str:
    options = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return options["$filter"]


def same_value(literal, value) -> bool:
    if isinstance(value, ODataTimestamp):
        return literal.kind == "datetimeoffset" and literal.value.ticks == value.ticks
    if value is None:
        return literal.kind == "null" and literal.value is None
    if isinstance(value, bool):
        return literal.kind == "bool" and literal.value is value
    if isinstance(value, int):
        return literal.kind == "int" and literal.value == value
    if isinstance(value, Decimal):
        return literal.kind in ("decimal", "int") and Decimal(literal.value) == value
    if isinstance(value, date):
        return literal.kind == "date" and literal.value == value
    return literal.kind == "string" and literal.value == value


@given(operators, values)
def test_every_literal_is_read_back_exactly(operator, value):
    url = q.ODataQuery("Property", filter=q.compare("City", operator, value)).url("http://h/o")
    parsed = sim_parser.parse_filter(filter_sent(url))
    assert isinstance(parsed, sim_parser.Compare)
    assert parsed.op == operator
    assert parsed.left == sim_parser.Field("City")
    assert same_value(parsed.right, value), (parsed.right, value)


@given(texts, texts, st.sampled_from(["contains", "startswith", "endswith"]))
def test_combined_filters_keep_their_structure(a, b, function):
    builder = getattr(q, function)
    expr = (q.eq("City", a) | ~builder("PublicRemarks", b)) & q.ne("ListPrice", None)
    url = q.ODataQuery("Property", filter=expr).url("http://h/o")
    parsed = sim_parser.parse_filter(filter_sent(url))
    assert isinstance(parsed, sim_parser.And)
    assert isinstance(parsed.left, sim_parser.Or)
    assert parsed.left.left.right.value == a
    call = parsed.left.right.operand
    assert isinstance(call, sim_parser.Call) and call.name == function
    assert call.args[1].value == b


@settings(max_examples=25)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40))
def test_a_filter_on_arbitrary_text_finds_exactly_that_record_over_http(simulator, city):
    key = "ROUNDTRIP-" + city.encode("utf-8").hex()[:40]
    simulator.upsert("Property", [{"ListingKey": key, "City": city}])
    client = build_client(simulator)
    query = q.ODataQuery("Property", filter=q.eq("City", city) & q.eq("ListingKey", key),
                         select=("ListingKey", "City"))
    page = client.get_page(query)
    assert page.records == [{"ListingKey": key, "City": city}]
