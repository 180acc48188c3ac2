from datetime import date
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.trestle import query as q


def decoded_options(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        pytest.param("O'Brien", "'O''Brien'", id="quote-doubled"),
        pytest.param(None, "null", id="null"),
        pytest.param(True, "true", id="true"),
        pytest.param(42, "42", id="int"),
        pytest.param(Decimal("1E+3"), "1000", id="decimal-no-exponent"),
        pytest.param(Decimal("12.50"), "12.50", id="decimal-scale-kept"),
        pytest.param(date(2024, 1, 31), "2024-01-31", id="date"),
        pytest.param(ODataTimestamp.parse("2024-03-01T12:34:56.1234567Z"),
                     "2024-03-01T12:34:56.1234567Z", id="timestamp-7-digits"),
    ],
)
def test_format_literal(value, literal):
    assert q.format_literal(value) == literal


@pytest.mark.parametrize("bad", [Decimal("NaN"), float("inf"), object()], ids=["nan", "inf", "obj"])
def test_format_literal_refuses_values_without_a_literal(bad):
    with pytest.raises((TypeError, ValueError)):
        q.format_literal(bad)


def test_hostile_value_cannot_add_query_options():
    url = q.ODataQuery("Property", filter=q.eq("City", "a&$top=1#'x")).url("https://h/odata")
    options = decoded_options(url)
    assert set(options) == {"$filter"}
    assert options["$filter"] == "City eq 'a&$top=1#''x'"
    assert "#" not in url and "&$top" not in url


def test_plus_in_offset_is_encoded():
    stamp = "2020-10-31T13:30:30.1234-05:00"
    url = q.ODataQuery("Property", filter=q.gt("X", ODataTimestamp.parse(stamp))).url("http://h")
    assert "+" not in urlsplit(url).query


def test_full_query_renders_every_option_in_order():
    query = q.ODataQuery(
        "Property",
        filter=q.eq("StandardStatus", "Active") & ~q.contains("City", "x"),
        select=("ListingKey", "ListPrice"),
        orderby=(("ModificationTimestamp", False), ("ListingKey", True)),
        top=1000,
        skip=2000,
        count=True,
        expand=(q.Expand("Media", select=("MediaURL",), orderby=(("Order", False),), top=5),),
    )
    options = decoded_options(query.url("https://h/trestle/odata/"))
    assert options == {
        "$filter": "(StandardStatus eq 'Active') and (not (contains(City,'x')))",
        "$select": "ListingKey,ListPrice",
        "$orderby": "ModificationTimestamp asc,ListingKey desc",
        "$top": "1000",
        "$skip": "2000",
        "$count": "true",
        "$expand": "Media($select=MediaURL;$orderby=Order asc;$top=5)",
    }
    assert query.url("https://h/trestle/odata/").startswith("https://h/trestle/odata/Property?")


@pytest.mark.parametrize(
    "build",
    [
        lambda: q.eq("City) or (1 eq 1", "x"),
        lambda: q.ODataQuery("Property", replication=True, skip=10),
        lambda: q.ODataQuery("Property", top=0),
        lambda: q.ODataQuery("Prop/erty"),
        lambda: q.has("Appliances", "Ns.Enums.Appliances", ["Bar'Fridge"]),
        lambda: q.compare("City", "like", "x"),
    ],
    ids=["field-injection", "replication-skip", "top-zero", "bad-resource", "enum-member", "op"],
)
def test_invalid_queries_are_refused_before_sending(build):
    with pytest.raises(ValueError):
        build()


def test_keyset_expression_keeps_ties():
    cursor = (ODataTimestamp.parse("2024-01-01T00:00:00Z"), "K1")
    text = q.after_keyset("ModificationTimestamp", "ListingKey", cursor).text
    assert text == (
        "(ModificationTimestamp gt 2024-01-01T00:00:00.0000000Z) or "
        "((ModificationTimestamp eq 2024-01-01T00:00:00.0000000Z) and (ListingKey gt 'K1'))"
    )


def test_all_of_skips_missing_parts():
    assert q.all_of(None, None) is None
    assert q.all_of(None, q.eq("A", 1)).text == "A eq 1"
