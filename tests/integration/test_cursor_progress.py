"""Issue 22 item 8: paging stops when the server does not move through the collection.

A small server of the test's own ignores the filter and answers the same records for
ever, each time with a new nextLink. Before, a keyset walk, a census or a link walk went
round until the worker's 3-hour soft limit (forever under `sync --local`); now the walk
stops on the page that repeats, with a fatal error that says the server ignores the
filter.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from trestle_tasks.core.errors import UnexpectedResponseError
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.trestle.pager import KeysetRange, census_versions, walk_keyset, walk_links
from trestle_tasks.trestle.query import ODataQuery

from .hostile_stream import client_for, hostile, send_json

pytestmark = pytest.mark.integration

# --- a server that ignores the filter -----------------------------------------------------

STUCK_RECORDS = [
    {"ListingKey": "a", "ModificationTimestamp": "2024-01-01T00:00:00Z"},
    {"ListingKey": "b", "ModificationTimestamp": "2024-01-01T00:00:01Z"},
]


def ignoring_the_filter(handler: BaseHTTPRequestHandler) -> None:
    """The same two records whatever is asked, always with a link to more (a new one
    each time, so no link repeats)."""
    ignoring_the_filter.calls += 1  # type: ignore[attr-defined]
    send_json(handler, {
        "value": STUCK_RECORDS,
        "@odata.nextLink": f"http://{handler.headers['Host']}/odata/Property?"
                           f"$skip={2 * ignoring_the_filter.calls}",  # type: ignore[attr-defined]
    })


ignoring_the_filter.calls = 0  # type: ignore[attr-defined]

MAX_PAGES = 50  # far more than the walk needs before it must stop


def pages_until_stopped(walk: Iterator[object]) -> int:
    pages = 0
    for pages, _ in enumerate(walk, 1):
        if pages > MAX_PAGES:
            pytest.fail(f"the walk went on past {MAX_PAGES} pages of the same records")
    return pages


def test_a_keyset_walk_stops_when_the_server_ignores_the_filter():
    with hostile(ignoring_the_filter) as base:
        client = client_for(base)
        window = KeysetRange("Property", "ListingKey",
                              upper=ODataTimestamp.parse("2025-01-01T00:00:00Z"))
        with pytest.raises(UnexpectedResponseError, match="the walk would never end") as caught:
            pages_until_stopped(walk_keyset(client, window))
    assert not caught.value.retriable
    assert "ignores the filter" in str(caught.value)
    assert client.stats.requests == 2  # the first page, and the one that repeated it


def test_a_keyset_page_outside_the_window_stops_the_walk():
    """Records before the cursor asked for: the server did not apply the filter."""
    with hostile(ignoring_the_filter) as base:
        client = client_for(base)
        window = KeysetRange("Property", "ListingKey",
                              lower=(ODataTimestamp.parse("2024-06-01T00:00:00Z"), None))
        with pytest.raises(UnexpectedResponseError, match="outside the range asked for"):
            pages_until_stopped(walk_keyset(client, window))
        ceiling = KeysetRange("Property", "ListingKey",
                               upper=ODataTimestamp.parse("2024-01-01T00:00:00Z"))
        with pytest.raises(UnexpectedResponseError, match="after the window's end"):
            pages_until_stopped(walk_keyset(client, ceiling))


def test_a_census_stops_when_the_server_ignores_the_filter():
    with hostile(ignoring_the_filter) as base:
        client = client_for(base)
        with pytest.raises(UnexpectedResponseError, match="cursor does not advance"):
            pages_until_stopped(census_versions(client, "Property", "ListingKey"))
    assert client.stats.requests == 2


def test_new_links_to_the_same_page_stop_a_link_walk():
    with hostile(ignoring_the_filter) as base:
        client = client_for(base)
        with pytest.raises(UnexpectedResponseError, match="records of the page before"):
            pages_until_stopped(walk_links(client, ODataQuery("Property")))
    assert client.stats.requests == 2
