"""The keyset walk's progress checks (issue 22 item 8), as properties over real HTTP.

A server of the test's own serves keyset pages of generated records, with timestamp ties
across page boundaries (a cursor's timestamp is then shared by the next page's first
records). Honest, it is walked whole with no false alarm; from some request on it answers
an earlier page again (it ignores the filter), and the walk stops there, having yielded
at most that one repeated page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.hostile_stream import client_for, hostile, send_json
from trestle_tasks.core.errors import UnexpectedResponseError
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset

UPPER = ODataTimestamp.parse("2024-01-01T00:01:00Z")
WINDOW = KeysetRange("Property", "ListingKey", upper=UPPER)


@dataclass
class Script:
    """What the server answers: page `calls` in order, or from `stuck_at` on, the page
    `back_to` again."""

    pages: list[list[dict[str, str]]] = field(default_factory=list)
    calls: int = 0
    stuck_at: int | None = None
    back_to: int = 0

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        index = self.calls
        self.calls += 1
        if self.stuck_at is not None and index >= self.stuck_at:
            index = self.back_to
        body: dict[str, object] = {"value": self.pages[index]}
        if index < len(self.pages) - 1 or self.stuck_at is not None:
            body["@odata.nextLink"] = f"http://{handler.headers['Host']}/odata/Property?more"
        send_json(handler, body)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Script, TrestleClient]]:
    script = Script()
    with hostile(script.answer) as base:
        yield script, client_for(base)


# Records with few distinct seconds: ties of a timestamp across pages are common.
records = st.lists(
    st.tuples(st.integers(0, 5), st.text("abcdef", min_size=1, max_size=3)),
    min_size=2, max_size=40, unique_by=lambda r: r[1],
).map(lambda rows: [
    {"ListingKey": key, "ModificationTimestamp": f"2024-01-01T00:00:{second:02d}Z"}
    for second, key in sorted(rows)
])


def paged(rows: list[dict[str, str]], size: int) -> list[list[dict[str, str]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records, st.integers(1, 7))
def test_an_honest_walk_with_ties_across_pages_is_never_stopped(served, rows, size):
    script, client = served
    script.pages, script.calls, script.stuck_at = paged(rows, size), 0, None
    walked = [r for page in walk_keyset(client, WINDOW, page_size=size) for r in page.records]
    assert walked == rows


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records, st.integers(1, 7), st.data())
def test_a_server_that_goes_back_is_stopped_at_once(served, rows, size, data):
    pages = paged(rows, size)
    if len(pages) < 2:
        return
    stuck_at = data.draw(st.integers(1, len(pages) - 1), label="stuck_at")
    back_to = data.draw(st.integers(0, stuck_at - 1), label="back_to")
    script, client = served
    script.pages, script.calls, script.stuck_at, script.back_to = pages, 0, stuck_at, back_to
    yielded = []
    with pytest.raises(UnexpectedResponseError, match="never end"):
        for page in walk_keyset(client, WINDOW, page_size=size):
            yielded.append(page.records)
            assert len(yielded) <= len(pages) + 1, "the walk went on"
    assert yielded[:stuck_at] == pages[:stuck_at]
    # A repeated page whose records all tie with the cursor's timestamp can't be told
    # from the next page by its records (keys are in the server's collation): it is
    # stopped by its cursor, after it was handed on once.
    assert len(yielded) in (stuck_at, stuck_at + 1)
    assert script.calls == stuck_at + 1
