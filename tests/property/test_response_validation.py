"""Response validation: a collection or a named error, never a silent empty page."""

import json

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.core.errors import (
    InvalidResponseError,
    ODataRequestError,
    RateLimitedError,
    ReplicationLinkExpiredError,
    TransientServerError,
    UnexpectedResponseError,
    UnlicensedResourceError,
)
from trestle_tasks.trestle.client import _to_page
from trestle_tasks.trestle.http import parse_json_body, raise_for_status

URL = "https://user:dbpw@api.example/trestle/odata/Property?$top=10"


def bare_response(status: int, body: bytes, content_type="application/json", headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    response.headers.update(headers or {})
    response.url = URL
    return response


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)
records = st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=5)


@given(records, st.one_of(st.none(), st.just("https://api.example/trestle/odata/Property?$skip=10")),
       st.one_of(st.none(), st.integers(0, 10**7)))
def test_a_valid_collection_is_returned_whole(rows, next_link, count):
    body = {"@odata.context": "x", "value": rows}
    if next_link:
        body["@odata.nextLink"] = next_link
    if count is not None:
        body["@odata.count"] = count
    page = _to_page(parse_json_body(bare_response(200, json.dumps(body).encode()), URL), URL,
                    None)
    assert page.records == rows
    assert page.next_link == next_link
    assert page.count == count


@given(json_values)
def test_anything_that_is_not_a_collection_is_an_error(body):
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        body = {**body, "value": "not a list"}
    with pytest.raises(UnexpectedResponseError) as caught:
        _to_page(body, URL, None)
    assert "api.example" in str(caught.value)
    assert "dbpw" not in str(caught.value)


@given(st.binary(max_size=200))
def test_bodies_that_are_not_json_are_retriable_and_name_the_url(raw):
    try:
        json.loads(raw)
    except ValueError:
        pass
    else:
        return  # valid JSON is the previous test's business
    with pytest.raises(InvalidResponseError) as caught:
        parse_json_body(bare_response(200, raw, "text/html"), URL)
    assert caught.value.retriable
    assert "api.example" in str(caught.value) and "dbpw" not in str(caught.value)


def test_truncated_json_is_retriable():
    whole = json.dumps({"value": [{"ListingKey": "1"}] * 50}).encode()
    with pytest.raises(InvalidResponseError):
        parse_json_body(bare_response(200, whole[: len(whole) // 2]), URL)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "url", "expected", "message"),
    [
        pytest.param(429, b'{"error":{"code":"429","message":"Quota exceeded"}}',
                     "application/json", URL, RateLimitedError, "Quota exceeded", id="429"),
        pytest.param(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                     "text/html", URL, TransientServerError, "503 Service Unavailable",
                     id="503-html"),
        pytest.param(400, b'{"error":{"code":"400","message":"Foo not in metadata"}}',
                     "application/json", URL, ODataRequestError, "not in metadata", id="400"),
        pytest.param(403, b'{"error":{"message":"Forbidden"}}', "application/json",
                     URL, UnlicensedResourceError, "Forbidden", id="403-unlicensed"),
        pytest.param(400, b'{"error":{"message":"link expired"}}', "application/json",
                     "https://api.example/trestle/odata/Property/replication?id=abc",
                     ReplicationLinkExpiredError, "link expired", id="replication-expired"),
    ],
)
def test_status_classification(status, body, content_type, url, expected, message):
    with pytest.raises(expected) as caught:
        raise_for_status(bare_response(status, body, content_type), url,
                         retry_after_cap_s=60, resource_query=True)
    assert message in str(caught.value)
    assert caught.value.status == status
    assert type(caught.value).retriable == (status in (429, 503))


def test_retry_after_is_carried_on_the_error():
    response = bare_response(429, b"{}", headers={"Retry-After": "12"})
    with pytest.raises(RateLimitedError) as caught:
        raise_for_status(response, URL, retry_after_cap_s=60, resource_query=True)
    assert caught.value.retry_after == 12.0
