"""A nextLink that points the bearer token at another host is refused (issue 22, item 1).

`urlsplit` takes everything up to the last `@` as userinfo, urllib3 (what requests sends
with) ends the authority at the first `\\`: `http://evil:port\\@api/…` passed the origin
check and the token went to `evil`, whose records were then stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from tests.hostile_http import Answer, HostileServer, Seen, hostile_server
from trestle_tasks.core.errors import UnsafeLinkError
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient, new_session, sent_origin
from trestle_tasks.trestle.query import ODataQuery
from trestle_tasks.trestle.token_cache import MemoryTokenCache

pytestmark = pytest.mark.integration

TOKEN = "tok-3f9c2a7d5e8b41f0a6c9"
RECORD = {"ListingKey": "evil-1", "ModificationTimestamp": "2024-01-01T00:00:00Z"}


@pytest.fixture
def evil() -> Iterator[HostileServer]:
    with hostile_server(lambda seen: Answer.json({"value": [RECORD]})) as server:
        yield server


def _client(api: HostileServer) -> TrestleClient:
    session = new_session()
    retry = RetryPolicy(budget_s=0)
    tokens = TokenProvider(session=session, token_url=f"{api.url}/token", client_id="id",
                           client_secret=Secret("secret-value-1"), cache=MemoryTokenCache(),
                           retry=retry, timeout_s=5)
    return TrestleClient(session=session, odata_root=f"{api.url}/odata", tokens=tokens,
                         retry=retry, timeout_s=5)


@pytest.mark.parametrize("shape", [
    "http://127.0.0.1:{evil}\\@127.0.0.1:{api}/odata/Property?$skip=1",
    "http://127.0.0.1:{evil}\\\\@127.0.0.1:{api}/odata/Property?$skip=1",
    "http://x:y@127.0.0.1:{api}/odata/Property?$skip=1",
    "http://127.0.0.1:{api}\t/odata/Property?$skip=1",
])
def test_a_next_link_that_would_reach_another_host_is_refused(evil: HostileServer,
                                                             shape: str) -> None:
    def api_answer(seen: Seen) -> Answer:
        if seen.method == "POST":
            return Answer.json({"access_token": TOKEN, "expires_in": 3600})
        link = shape.format(evil=evil.port, api=api_port[0])
        return Answer.json({"value": [{**RECORD, "ListingKey": "good-1"}],
                            "@odata.nextLink": link})

    api_port: list[int] = []
    with hostile_server(api_answer) as api:
        api_port.append(api.port)
        client = _client(api)
        first = client.get_page(ODataQuery("Property", top=1))
        assert first.next_link is not None
        with pytest.raises(UnsafeLinkError):
            client.get_page(first.next_link)
    assert evil.seen == [], "the token reached another host"


def test_a_plain_next_link_on_the_same_service_is_followed() -> None:
    def api_answer(seen: Seen) -> Answer:
        if seen.method == "POST":
            return Answer.json({"access_token": TOKEN, "expires_in": 3600})
        if "skip" in seen.path:
            return Answer.json({"value": [RECORD]})
        return Answer.json({"value": [RECORD], "@odata.nextLink":
                            f"http://127.0.0.1:{port[0]}/odata/Property?$skip=1&"
                            "$filter=ListingKey gt 'a'"})

    port: list[int] = []
    with hostile_server(api_answer) as api:
        port.append(api.port)
        client = _client(api)
        first = client.get_page(ODataQuery("Property", top=1))
        assert first.next_link is not None
        assert client.get_page(first.next_link).records == [RECORD]


# --- the check itself, over generated hostile links ----------------------------------

_HOSTS = st.sampled_from(["api.example.com", "API.example.com", "evil.test", "127.0.0.1",
                          "[::1]", "api.example.com.evil.test", ""])
_PORTS = st.sampled_from(["", ":443", ":80", ":18202", ":0", ":99999", ":x"])
_JUNK = st.sampled_from(["\\", "\\\\", "@", ":", "\t", " ", "\r\n", "%5C", "%40", "/", "#",
                         "?", "\x00", "\x7f", "user:pw@", ";", "\u3002", "\uff20"])


@st.composite
def hostile_links(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp"]))
    parts = [draw(st.one_of(_HOSTS, _PORTS, _JUNK)) for _ in range(draw(st.integers(1, 6)))]
    return f"{scheme}://{''.join(parts)}/odata/Property?$skip=1"


@settings(max_examples=500, deadline=None)
@given(hostile_links())
def test_an_accepted_link_is_sent_to_the_configured_host(link: str) -> None:
    """Whatever a link looks like, if the check lets it through, the request that requests
    would send connects to the configured service: no credential leaves its origin."""
    configured = ("https", "api.example.com", 443)
    if sent_origin(link) != configured:
        return
    prepared = parse_url(requests.Request("GET", link).prepare().url or "")
    assert (prepared.scheme, (prepared.host or "").lower(), prepared.port or 443) == configured
    assert prepared.auth is None
    assert urlsplit(link).hostname == "api.example.com"
    assert not re.search(r"[\x00-\x1f\x7f]", link)
