"""A server that takes fewer records a page when photos come inline (`$expand=Media`):
whether Trestle lowers `$top` there is unknown (MLS Grid does, 5,000 to 1,000). The
simulator plays one with `expand_top_ceiling`; the walk reads the 400 that names the
largest `$top` and goes on with pages that size, every record once. A number in that
message is the server's word: only a plausible one is believed."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import requests

from trestle_tasks.core.errors import ODataRequestError, TopCeilingError
from trestle_tasks.sync.media import media_expansion
from trestle_tasks.trestle.http import raise_for_status
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.trestle.query import ODataQuery

from .conftest import build_client, start_simulator


@pytest.mark.parametrize("ceiling", [1, 37, 100])
def test_a_lower_ceiling_with_photos_inline_is_followed_and_nothing_is_lost(ceiling, caplog):
    sim = start_simulator(records=250, seed=5, expand_top_ceiling=ceiling)
    try:
        client = build_client(sim)
        base = ODataQuery("Property", expand=(media_expansion(),))
        with caplog.at_level(logging.WARNING, logger="trestle_tasks.trestle.pager"):
            pages = list(walk_keyset(client, KeysetRange("Property", "ListingKey"),
                                     page_size=1000, base=base))
        keys = [r["ListingKey"] for page in pages for r in page.records]
        assert Counter(keys) == Counter(r["ListingKey"] for r in sim.records("Property"))
        assert max(len(page.records) for page in pages) <= ceiling
        assert all("Media" in r for page in pages for r in page.records)
        lowered = [r for r in caplog.records if "records a page here" in r.getMessage()]
        assert len(lowered) == 1  # once a walk, not once a page
        # Without photos the same server takes 1,000 a page.
        plain = list(walk_keyset(client, KeysetRange("Property", "ListingKey"),
                                 page_size=1000))
        assert len(plain[0].records) == 250
    finally:
        sim.stop()


def response_400(message: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 400
    response.headers["Content-Type"] = "application/json"
    response._content = ('{"error": {"code": "400", "message": "' + message + '"}}').encode()
    return response


@pytest.mark.parametrize(("number", "believed"), [
    ("1000", True), ("1", True), ("300000", True),
    ("0", False), ("300001", False), ("99999999999", False)])
def test_only_a_plausible_ceiling_is_believed(number, believed):
    message = f"maximum limit/$top value for this kind of query is {number}"
    with pytest.raises(ODataRequestError) as raised:
        raise_for_status(response_400(message), "https://h/odata/Property?$top=2000",
                         retry_after_cap_s=60, resource_query=True)
    assert isinstance(raised.value, TopCeilingError) is believed
    if believed:
        assert raised.value.ceiling == int(number)
