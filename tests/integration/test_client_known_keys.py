"""Over real HTTP: pages of a resource whose field names the client was told are decoded
to the same records, in the same key order, with one key string shared by every record;
names that do not cover a page leave it to the plain decoder, with the same result."""

from __future__ import annotations

from typing import Any

import pytest

from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset

from .conftest import build_client

pytestmark = pytest.mark.integration


def walk(client: Any) -> list[dict[str, Any]]:
    return [record for page in walk_keyset(client, KeysetRange("Property", "ListingKey"),
                                           page_size=120) for record in page.records]


def as_items(records: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
    return [list(record.items()) for record in records]


def test_known_field_names_decode_to_the_same_records(simulator: Any) -> None:
    plain_client, known_client = build_client(simulator), build_client(simulator)
    spec = parse_metadata(plain_client.get_metadata()).resource("Property")
    known_client.expect_fields("Property", spec.record_names())
    plain, known = walk(plain_client), walk(known_client)
    assert len(known) == 300
    assert as_items(known) == as_items(plain)
    longest = max(known[0], key=len)  # a key too long for the decoder's own small cache
    assert len(longest) > 16
    assert same_key(known[0], known[-1], longest)  # one string, shared by every record


def same_key(first: dict[str, Any], second: dict[str, Any], name: str) -> bool:
    return next(k for k in first if k == name) is next(k for k in second if k == name)


def test_names_that_miss_a_field_leave_pages_to_the_plain_decoder(simulator: Any) -> None:
    plain_client, partial_client = build_client(simulator), build_client(simulator)
    spec = parse_metadata(plain_client.get_metadata()).resource("Property")
    partial_client.expect_fields("Property", [f.name for f in spec.fields][:-1])
    assert as_items(walk(partial_client)) == as_items(walk(plain_client))
