"""Pages decoded with their field names known (trestle/known_keys.py) are exactly what the
plain decoder makes of them, key order included, or not decoded at all: for any page of
records with declared names, undeclared ones, annotations, any JSON values (exact
decimals, nesting, nulls) and odd top-level members."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.trestle.known_keys import (
    FAILURES_TO_GIVE_UP,
    MAX_NAME_CHARS,
    KnownKeyDecoders,
)

NAMES = ["ListingKey", "ModificationTimestamp", "ListPrice", "PublicRemarks",
         "AVeryLongFieldNameThatNoKeyCacheHolds", "Media", "é名前"]
PLAIN = msgspec.json.Decoder(float_hook=Decimal)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=3))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5)
keys = st.one_of(st.sampled_from(NAMES), st.sampled_from(["Undeclared", "@odata.etag"]),
                 st.text(max_size=6))
records = st.one_of(st.dictionaries(st.sampled_from(NAMES), values, max_size=7),
                    st.dictionaries(keys, values, max_size=5), values)
members = st.one_of(st.lists(records, max_size=4), st.text(max_size=10), st.integers(),
                    st.none(), st.booleans(), st.decimals(allow_nan=False, places=2))


def ordered(value: Any) -> Any:
    """`value` with every object as a list of its items: equal only in the same order."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return (type(value), value)


_ENCODER = msgspec.json.Encoder(decimal_format="number")


def encoded(page: dict[str, Any]) -> bytes:
    """The page as JSON, decimals as numbers with every digit given."""
    return _ENCODER.encode(page)


@given(page=st.dictionaries(st.sampled_from(["value", "@odata.nextLink", "@odata.count",
                                             "@odata.context", "other"]), members,
                            max_size=4),
       shuffled=st.permutations(NAMES))
def test_known_keys_decode_exactly_or_not_at_all(page: dict[str, Any],
                                                 shuffled: list[str]) -> None:
    decoders = KnownKeyDecoders()
    decoders.expect("Property", shuffled)  # the names' order does not matter
    content = encoded(page)
    known = decoders.decode("Property", content)
    if known is not None:
        assert ordered(known) == ordered(PLAIN.decode(content))


def test_records_share_the_key_strings() -> None:
    decoders = KnownKeyDecoders()
    decoders.expect("Property", NAMES)
    body = decoders.decode("Property", b'{"value": [{"AVeryLongFieldNameThatNoKeyCacheHolds"'
                           b': 1, "ListPrice": 1.50}, {"AVeryLongFieldNameThatNoKeyCacheHolds"'
                           b': null}]}')
    assert body is not None
    first, second = (next(iter(record)) for record in body["value"])
    assert first is second  # one string, not one per record
    assert body["value"][0]["ListPrice"] == Decimal("1.50")
    assert str(body["value"][0]["ListPrice"]) == "1.50"  # exact, as the plain decoder


def test_pages_that_do_not_fit_are_left_to_the_plain_decoder() -> None:
    decoders = KnownKeyDecoders()
    decoders.expect("Property", NAMES)
    undeclared = json.dumps({"value": [{"ListingKey": "a", "Undeclared": 1}]}).encode()
    assert decoders.decode("Property", undeclared) is None
    assert decoders.decode("Media", undeclared) is None  # names never given
    assert decoders.decode("Property", b"not json") is None
    fits = json.dumps({"value": [{"ListingKey": "a"}]}).encode()
    assert decoders.decode("Property", fits) == {"value": [{"ListingKey": "a"}]}


def test_a_resource_that_keeps_failing_stops_being_tried() -> None:
    decoders = KnownKeyDecoders()
    decoders.expect("Property", NAMES)
    undeclared = json.dumps({"value": [{"Undeclared": 1}]}).encode()
    fits = json.dumps({"value": [{"ListingKey": "a"}]}).encode()
    for _ in range(FAILURES_TO_GIVE_UP - 1):
        assert decoders.decode("Property", undeclared) is None
    assert decoders.decode("Property", fits) is not None  # a success starts the count over
    for _ in range(FAILURES_TO_GIVE_UP):
        assert decoders.decode("Property", undeclared) is None
    assert decoders.decode("Property", fits) is None  # given up: the plain decoder decides
    decoders.expect("Property", NAMES)  # expected again (the next window): tried again
    assert decoders.decode("Property", fits) is not None
    decoders.expect("Property", [*NAMES, "Undeclared"])  # new names
    assert decoders.decode("Property", undeclared) == {"value": [{"Undeclared": 1}]}


def test_names_from_the_feed_are_bounded() -> None:
    decoders = KnownKeyDecoders()
    fits = json.dumps({"value": [{"ListingKey": "a"}]}).encode()
    decoders.expect("Property", ["ListingKey", "x" * (MAX_NAME_CHARS + 1)])
    assert decoders.decode("Property", fits) is None
    decoders.expect("Property", [f"F{i}" for i in range(5000)] + ["ListingKey"])
    assert decoders.decode("Property", fits) is None
    decoders.expect("Property", [])
    assert decoders.decode("Property", fits) is None
