"""Turning one HTTP answer (or a failed attempt) into a value or a classified error.

Retriable: 429, 5xx, broken connections, bodies that are not JSON. Fatal: every other 4xx,
with the server's own message. This is decided here once, for the token endpoint and the
OData service alike.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import requests

from trestle_tasks.core.errors import (
    ConnectionFailedError,
    InvalidResponseError,
    ODataRequestError,
    RateLimitedError,
    ReplicationLinkExpiredError,
    TopCeilingError,
    TransientServerError,
    UnlicensedResourceError,
)
from trestle_tasks.core.logs import redact
from trestle_tasks.core.masking import mask_url
from trestle_tasks.core.retry import parse_retry_after

# Numbers with a fraction or an exponent become exact Decimals built from the digits sent.
_BODY_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
MAX_MESSAGE = 300


def server_message(response: requests.Response) -> str:
    """The server's explanation: `error.message` of a JSON body, else the text; redacted,
    then shortened (cutting first could leave half a secret the redactor no longer sees).

    Redacted because a server or proxy may echo the request (the token form with the
    client secret), and the message travels on in exceptions, Celery results and the
    sync log, not only in log lines."""
    return redact(_server_text(response))[:MAX_MESSAGE]


def _server_text(response: requests.Response) -> str:
    text = response.text or ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    plain = _SPACES.sub(" ", _TAGS.sub(" ", text)).strip()
    return plain or response.reason or "no message"


# Trestle's 400 for a page too large: "maximum limit/$top value for this kind of query is
# 1000". The number is the server's word, so it is bounded before it is used: a page size
# is at most this (the key-only census's ceiling).
_TOP_CEILING = re.compile(r"maximum limit/\$top value for this kind of query is (\d{1,7})\b")
MAX_TOP_CEILING_SEEN = 300_000


def raise_for_status(
    response: requests.Response, url: str, *, retry_after_cap_s: float, resource_query: bool
) -> None:
    """Raise the classified error for a non-2xx answer (401 is the caller's to handle)."""
    status = response.status_code
    if status < 400:
        return
    shown_url = mask_url(url)
    message = server_message(response)
    retry_after = parse_retry_after(
        response.headers.get("Retry-After"), now=datetime.now(UTC), cap_s=retry_after_cap_s
    )
    text = f"HTTP {status} from {shown_url}: {message}"
    details: dict[str, Any] = {"status": status, "url": shown_url}
    if status == 429:
        raise RateLimitedError(text, retry_after=retry_after, **details)
    if status >= 500:
        raise TransientServerError(text, retry_after=retry_after, **details)
    if status == 400 and "/replication" in url.split("?", 1)[0]:
        raise ReplicationLinkExpiredError(
            f"{text} (a replication link dies after 5 idle minutes; the walk must restart)",
            **details,
        )
    if resource_query and status in (403, 404):
        raise UnlicensedResourceError(f"{text} (is this resource licensed?)", **details)
    ceiling = _TOP_CEILING.search(message) if status == 400 else None
    if ceiling is not None and 0 < int(ceiling.group(1)) <= MAX_TOP_CEILING_SEEN:
        raise TopCeilingError(text, ceiling=int(ceiling.group(1)), **details)
    raise ODataRequestError(text, **details)


def parse_json_body(response: requests.Response, url: str) -> Any:
    """The decoded JSON body; decimals kept exact. Not JSON is retriable (cut short, a proxy).

    msgspec parses a 1,000-record page in half the time of the standard parser. Where it
    refuses the body (a NaN literal, an escaped lone surrogate, a BOM, malformed JSON) the
    standard parser decides, so the result, and the error, are what they always were: a
    record with a bad value is still rejected on its own, not its whole page."""
    content = response.content
    try:
        return _BODY_DECODER.decode(content)
    except (msgspec.DecodeError, ValueError):
        pass
    except RecursionError:
        # One record nested thousands of levels deep must not lose its whole page: only
        # its too-deep value is replaced, and the loader rejects that record alone.
        from trestle_tasks.trestle.deep_json import decode_json_bounded

        try:
            return decode_json_bounded(content)
        except ValueError:
            pass  # not JSON after all: the standard parser says so, below
    content_type = response.headers.get("Content-Type", "")
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError as exc:
        raise InvalidResponseError(
            f"HTTP {response.status_code} from {mask_url(url)} is not valid JSON "
            f"(Content-Type {content_type or 'missing'}, {len(response.content)} bytes): {exc}",
            status=response.status_code,
            url=mask_url(url),
        ) from None


def connection_error(exc: Exception, url: str) -> ConnectionFailedError:
    """A retriable error for a failed attempt, naming the URL but not echoing headers."""
    kind = type(exc).__name__
    return ConnectionFailedError(f"{kind} talking to {mask_url(url)}", url=mask_url(url),
                                 kind=kind)


# What requests raises when the connection breaks, times out, or the body is cut short.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
