"""A census page decoded slim (two fields of each record, msgspec structs) says exactly
what the general decoding says: the same values, nextLink and count for a good page, the
same error for a bad one, whatever else the records and the body hold."""

from __future__ import annotations

import json

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from trestle_tasks.core.errors import TrestleTasksError
from trestle_tasks.trestle.client import to_slim_page
from trestle_tasks.trestle.http import parse_json_body
from trestle_tasks.trestle.slim_pages import decode_slim

FIELDS = ("ListingKey", "ModificationTimestamp")
URL = "https://api.example/trestle/odata/Property?$top=300000"

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(
    allow_nan=False, allow_infinity=False
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
records = st.dictionaries(
    st.sampled_from([*FIELDS, "ListPrice", "Media", "x"]) | st.text(max_size=5), values,
    max_size=5,
)
elements = records | scalars  # a record that is not an object: the page is refused
bodies = st.fixed_dictionaries(
    {"value": st.lists(elements, max_size=6) | values},
    optional={"@odata.nextLink": st.sampled_from(
        ["https://api.example/next", "ftp://x", "", 3, None]) | st.text(max_size=6),
        "@odata.count": st.integers(-2, 5) | st.booleans() | st.none() | st.text(max_size=2),
        "@odata.context": st.text(max_size=5)},
) | values


def general(content: bytes):
    response = requests.Response()
    response._content, response.status_code = content, 200
    try:
        return ("page", to_slim_page(parse_json_body(response, URL), URL, None, FIELDS))
    except TrestleTasksError as error:
        return ("error", type(error).__name__, str(error))


def slim(content: bytes):
    decoded = decode_slim(content, FIELDS)
    if decoded is None:
        return general(content)  # what get_slim_page does
    try:
        return ("page", to_slim_page(decoded, URL, None, FIELDS))
    except TrestleTasksError as error:
        return ("error", type(error).__name__, str(error))


@settings(max_examples=300, deadline=None)
@given(bodies, st.sampled_from(["json", "cut", "junk"]))
def test_slim_decoding_says_what_the_general_decoding_says(body, damage) -> None:
    content = json.dumps(body).encode()
    if damage == "cut":
        content = content[: len(content) // 2]
    elif damage == "junk":
        content = b"<html>" + content
    assert slim(content) == general(content)


def test_a_good_page_takes_the_slim_path() -> None:
    content = json.dumps({"value": [{"ListingKey": "a", "ModificationTimestamp": "t",
                                     "Other": [1, {"x": 2}]}, {"ListingKey": "b"}],
                          "@odata.nextLink": "https://api.example/next"}).encode()
    assert decode_slim(content, FIELDS) == ([("a", "t"), ("b", None)],
                                            "https://api.example/next", None)
