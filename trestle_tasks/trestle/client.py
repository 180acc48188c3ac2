"""The Trestle OData client: one authenticated, retried, validated GET at a time.

Composed from parts passed in (a requests session, a token provider, a retry policy) so
each can be replaced in tests. Hooks let the coordination layer throttle before every
request (the cluster-wide limiter) and read the quota headers after every response.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from trestle_tasks.core.errors import (
    BadCredentialsError,
    ConnectionFailedError,
    RateLimitedError,
    RetriableError,
    UnexpectedResponseError,
    UnsafeLinkError,
)
from trestle_tasks.core.masking import mask_url
from trestle_tasks.core.retry import NoProgressDeadline, RetryPolicy, call_with_retries
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.bounded_body import (
    DEFAULT_MAX_BYTES,
    WHOLE_ANSWER_TIMEOUTS,
    read_body,
    too_slow,
)
from trestle_tasks.trestle.deadline import DeadlineAdapter, answer_deadline
from trestle_tasks.trestle.http import (
    TRANSPORT_ERRORS,
    connection_error,
    parse_json_body,
    raise_for_status,
)
from trestle_tasks.trestle.known_keys import KnownKeyDecoders
from trestle_tasks.trestle.query import ODataQuery
from trestle_tasks.trestle.quota_headers import QuotaSnapshot, parse_quota_headers
from trestle_tasks.trestle.retry_notes import gave_up, on_first_wait
from trestle_tasks.trestle.sessions import HttpSession
from trestle_tasks.trestle.slim_pages import decode_slim

USER_AGENT = "trestle-tasks/0.1 (+https://github.com/trestle-tasks)"
api_log = logging.getLogger("trestle_tasks.api")


@dataclass(frozen=True)
class Page:
    """One page of an OData collection."""

    records: list[dict[str, Any]]
    next_link: str | None
    count: int | None
    url: str
    quota: QuotaSnapshot | None


@dataclass(frozen=True)
class SlimPage:
    """One page of a collection with only some fields of each record, as tuples."""

    rows: list[tuple[Any, ...]]
    next_link: str | None
    count: int | None
    url: str
    quota: QuotaSnapshot | None


@dataclass
class RequestStats:
    """What this client cost: every HTTP request sent counts, retries included."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    token_refreshes: int = 0
    api_bytes: int = 0  # response bodies as sent (compressed), for cost per GB
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)



def new_session() -> requests.Session:
    """One keep-alive session per process; requests asks for gzip by default."""
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    for scheme in ("http://", "https://"):  # answers bounded by a deadline (deadline.py)
        session.mount(scheme, DeadlineAdapter())
    return session


Origin = tuple[str, str, int | None]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> Origin:
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def sent_origin(url: str) -> Origin | None:
    """Where requests will really connect for `url`, or None for a link too odd to trust.

    Python's `urlsplit` and urllib3 (which requests sends with) disagree on odd URLs:
    `http://evil:1\\@api/…` is host `api` to urlsplit (userinfo runs to the last `@`) and
    host `evil` to urllib3 (the authority ends at the first `\\`). So the URL is prepared
    exactly as requests will prepare it and parsed by urllib3; both parsers must agree, and
    userinfo, a control character anywhere, or a backslash or whitespace before the path
    is refused outright: a server's link never needs them (a space in a query is fine:
    requests encodes it)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    scheme_end = url.find("://")
    authority = re.split(r"[/?#]", url[scheme_end + 3:], maxsplit=1)[0] if scheme_end >= 0 else url
    if "\\" in authority or any(ch.isspace() for ch in authority):
        return None
    try:
        prepared = requests.Request("GET", url).prepare().url or ""
        sent = parse_url(prepared)
        told = urlsplit(url)
        told_origin = _origin(url)
    except (ValueError, requests.RequestException, LocationParseError):
        return None
    if sent.auth is not None or "@" in told.netloc or sent.scheme not in _DEFAULT_PORTS:
        return None
    host = (sent.host or "").lower().strip("[]")  # an IPv6 literal, as urlsplit gives it
    origin = (sent.scheme, host, sent.port or _DEFAULT_PORTS[sent.scheme])
    return origin if origin == told_origin and origin[1] else None


class TrestleClient:
    def __init__(
        self,
        *,
        session: HttpSession,
        odata_root: str,
        tokens: TokenProvider,
        retry: RetryPolicy,
        timeout_s: float = 60.0,
        before_request: Callable[[], object] | None = None,
        on_quota: Callable[[QuotaSnapshot], None] | None = None,
        on_rate_limited: Callable[[RateLimitedError], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        progress: NoProgressDeadline | None = None,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        """`progress`: one budget of no progress shared with the token provider (give it
        the same one) and whatever else holds it; any successful answer restarts it.
        `max_response_bytes`: the cap on one body, decompressed (TRESTLE_MAX_RESPONSE_MB)."""
        self.odata_root = odata_root.rstrip("/")
        self._known_keys = KnownKeyDecoders()
        self._session = session
        self._tokens = tokens
        self._retry = retry
        self._timeout_s = timeout_s
        self._before_request = before_request
        self._on_quota = on_quota
        self._on_rate_limited = on_rate_limited
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._progress = progress
        self._max_response_bytes = max_response_bytes
        self._origin = _origin(self.odata_root)
        self.stats = RequestStats()
        self.last_quota: QuotaSnapshot | None = None
        # The server's clock minus ours, from the last answer's Date header (whole seconds:
        # within a second or two of 0 when both clocks are right). None: no usable header.
        self.server_clock_offset_s: float | None = None

    # --- public ------------------------------------------------------------------------

    def get_page(self, target: ODataQuery | str) -> Page:
        """Fetch one page: a query, or a nextLink followed exactly as the server gave it."""
        url = target.url(self.odata_root) if isinstance(target, ODataQuery) else target
        self._check_origin(url)
        resource = target.resource if isinstance(target, ODataQuery) else self._entity(url)
        body, url, quota = self._get_json(url, resource_query=True, resource=resource)
        return _to_page(body, url, quota)

    def expect_fields(self, resource: str, names: Iterable[str]) -> None:
        """The names a record of `resource` has (its declared fields and navigation
        properties): its pages are then decoded faster, to exactly the same records
        (trestle/known_keys.py)."""
        self._known_keys.expect(resource, names)

    def get_slim_page(self, target: ODataQuery | str, fields: tuple[str, ...]) -> SlimPage:
        """One page keeping only `fields` of each record, as tuples (a census page: 300,000
        records in a fraction of the memory of `get_page`); same checks, same errors."""
        url = target.url(self.odata_root) if isinstance(target, ODataQuery) else target
        self._check_origin(url)

        def attempt() -> tuple[Any, str, QuotaSnapshot | None]:
            response = self._send_once(url, accept="application/json", resource_query=True)
            slim = decode_slim(response.content, fields)
            return (slim if slim is not None else parse_json_body(response, url)), url, \
                self.last_quota

        body, url, quota = self._with_retries(attempt, url)
        return to_slim_page(body, url, quota, fields)

    def get_count(self, query: ODataQuery) -> int:
        """`@odata.count` of the query, asking for as few rows as the server allows."""
        page = self.get_page(query.with_(count=True, top=1))
        if page.count is None:
            raise UnexpectedResponseError(
                f"{mask_url(page.url)} answered $count=true without @odata.count"
            )
        return page.count

    def get_metadata(self) -> str:
        """The EDMX `$metadata` document as text."""
        url = f"{self.odata_root}/$metadata"
        response = self._send(url, accept="application/xml", resource_query=False)
        return response.text

    # --- the request loop ----------------------------------------------------------------

    def _check_origin(self, url: str) -> None:
        if sent_origin(url) != self._origin:
            raise UnsafeLinkError(
                f"refusing to send the access token to {mask_url(url)}: it is not on the "
                f"configured service {mask_url(self.odata_root)}"
            )

    def _get_json(self, url: str, *, resource_query: bool, resource: str | None = None
                  ) -> tuple[Any, str, QuotaSnapshot | None]:
        def attempt() -> tuple[Any, str, QuotaSnapshot | None]:
            response = self._send_once(
                url, accept="application/json", resource_query=resource_query
            )
            body = None if resource is None else self._known_keys.decode(
                resource, response.content)
            if body is None:
                body = parse_json_body(response, url)
            return body, url, self.last_quota

        return self._with_retries(attempt, url)

    def _send(self, url: str, *, accept: str, resource_query: bool) -> requests.Response:
        return self._with_retries(
            lambda: self._send_once(url, accept=accept, resource_query=resource_query), url
        )

    def _with_retries(self, attempt: Callable[[], Any], url: str) -> Any:
        def on_retry(error: RetriableError, wait_s: float) -> None:
            self.stats.add(retries=1)

        what, budget = f"GET {self._entity(url)}", self._retry.budget_s
        return call_with_retries(
            attempt, self._retry, clock=self._clock, sleep=self._sleep, rng=self._rng,
            on_retry=on_retry, shared=self._progress,
            on_first_wait=on_first_wait(what, url, budget), gave_up=gave_up(what, url, budget),
        )

    def _entity(self, url: str) -> str:
        """What a URL asks for, for notes and errors: `$metadata`, `Property`, … (the
        query is left out: it is long, and says nothing an operator can act on)."""
        path = urlsplit(url).path
        root = urlsplit(self.odata_root).path
        rest = path[len(root):] if path.startswith(root) else path
        return rest.strip("/").split("/", 1)[0].split("(", 1)[0] or "the service root"

    def _send_once(self, url: str, *, accept: str, resource_query: bool) -> requests.Response:
        """One request, plus at most one immediate repeat with a fresh token after a 401."""
        for refreshed in (False, True):
            token = self._tokens.get_token()
            if self._before_request is not None:
                self._before_request()
            self.stats.add(requests=1)
            sent = time.monotonic()
            sent_at = time.time()
            timeout_s = (self._timeout_s if self._progress is None
                         else self._progress.attempt_timeout(self._timeout_s))
            response = self._get_bounded(
                url, {"Authorization": f"Bearer {token}", "Accept": accept},
                timeout_s=timeout_s, sent=sent)
            if api_log.isEnabledFor(logging.DEBUG):
                api_log.debug("GET %s -> %d in %.0f ms (%d bytes)", mask_url(url),
                              response.status_code, (time.monotonic() - sent) * 1000,
                              len(response.content),
                              extra={"status": response.status_code})
            self.stats.add(api_bytes=_wire_bytes(response))
            self._observe_quota(response, sent_at)
            self._observe_clock(response)
            if response.status_code == 401 and not refreshed:
                # Expired or revoked: drop that token (unless a peer already did) and go again.
                self._tokens.invalidate(token)
                self.stats.add(token_refreshes=1)
                continue
            if response.status_code == 401:
                raise BadCredentialsError(
                    f"{mask_url(url)} refused a freshly issued token (HTTP 401): the "
                    "credentials may not be allowed to read this service",
                    status=401,
                )
            try:
                raise_for_status(
                    response, url, retry_after_cap_s=self._retry.max_retry_after_s,
                    resource_query=resource_query,
                )
            except RateLimitedError as error:
                self.stats.add(rate_limited=1)
                if self._on_rate_limited is not None:
                    self._on_rate_limited(error)
                raise
            except RetriableError:
                self.stats.add(server_errors=1)
                raise
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_bounded(self, url: str, headers: dict[str, str], *, timeout_s: float,
                     sent: float) -> requests.Response:
        """The answer, its body read whole: within `max_response_bytes` decompressed, and
        all of it (headers too) within WHOLE_ANSWER_TIMEOUTS x the read timeout, which
        alone is per socket read (bounded_body.py, deadline.py)."""
        total_s = WHOLE_ANSWER_TIMEOUTS * timeout_s
        with answer_deadline(total_s) as deadline:
            try:
                response = self._session.get(
                    url, headers=headers, timeout=(min(10.0, timeout_s), timeout_s),
                    stream=True,  # the body is read below, within the cap and the deadline
                )
            except TRANSPORT_ERRORS as exc:
                self.stats.add(connection_errors=1)
                api_log.debug("GET %s failed: %s", mask_url(url), type(exc).__name__)
                if deadline.fired:
                    raise too_slow(None, url, total_s) from None
                raise connection_error(exc, url) from None
            if deadline.fired:  # headers cut off by the deadline may parse as complete
                response.close()
                raise too_slow(None, url, total_s)
            try:
                read_body(response, url, max_bytes=self._max_response_bytes, started=sent,
                          total_s=total_s, guard=deadline)
            except ConnectionFailedError:
                self.stats.add(connection_errors=1)
                if deadline.fired:  # the deadline and the body's own watchdog race
                    raise too_slow(response.status_code, url, total_s) from None
                raise
        return response

    def _observe_clock(self, response: requests.Response) -> None:
        offset = clock_offset_s(response.headers.get("Date"), time.time())
        if offset is not None:
            self.server_clock_offset_s = offset

    def _observe_quota(self, response: requests.Response, sent_at: float) -> None:
        snapshot = parse_quota_headers(response.headers, now=time.time(), sent_at=sent_at)
        if snapshot is None:
            return
        self.last_quota = snapshot
        if self._on_quota is not None:
            self._on_quota(snapshot)


# A Date header further than this from our clock is not a clock's drift but a wrong header.
MAX_CREDIBLE_OFFSET_S = 7 * 86400


def clock_offset_s(date_header: str | None, received_at: float) -> float | None:
    """The server's Date (RFC 7231, whole seconds) minus our clock when the answer came;
    None for a missing, malformed or incredible header (it is untrusted input)."""
    if not date_header or len(date_header) > 64:
        return None
    try:
        stamped = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if stamped.tzinfo is None:
        return None
    offset = stamped.timestamp() - received_at
    return offset if abs(offset) <= MAX_CREDIBLE_OFFSET_S else None


def _wire_bytes(response: requests.Response) -> int:
    """The body's size as sent: Content-Length is the compressed size when gzipped; a
    chunked answer has none, and its decompressed size stands in (an over-count)."""
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length)
    return len(response.content)


def _to_page(body: Any, url: str, quota: QuotaSnapshot | None) -> Page:
    """Validate an OData collection; anything else is an error, never an empty page."""
    shown = mask_url(url)
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            f"{shown} answered {type(body).__name__}, not an OData collection object"
        )
    records = body.get("value")
    if not isinstance(records, list):
        raise UnexpectedResponseError(f"{shown} answered an object without a 'value' list")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise UnexpectedResponseError(
                f"{shown}: value[{index}] is {type(record).__name__}, not a record object"
            )
    next_link = body.get("@odata.nextLink")
    count = body.get("@odata.count")
    _check_collection_links(next_link, count, shown)
    return Page(records=records, next_link=next_link or None, count=count, url=url, quota=quota)


def to_slim_page(body: Any, url: str, quota: QuotaSnapshot | None,
                 fields: tuple[str, ...]) -> SlimPage:
    """A slim decoding (a tuple from `decode_slim`) or a general one (any JSON value) as a
    page of `fields`; the general one takes the collection checks of `get_page`."""
    if isinstance(body, tuple):
        rows, next_link, count = body
        _check_collection_links(next_link, count, mask_url(url))
        return SlimPage(rows=rows, next_link=next_link or None, count=count, url=url,
                        quota=quota)
    page = _to_page(body, url, quota)
    return SlimPage(rows=[tuple(record.get(name) for name in fields) for record in page.records],
                    next_link=page.next_link, count=page.count, url=url, quota=quota)


def _check_collection_links(next_link: Any, count: Any, shown: str) -> None:
    if next_link is not None and (
        not isinstance(next_link, str) or urlsplit(next_link).scheme not in ("http", "https")
    ):
        raise UnexpectedResponseError(f"{shown}: @odata.nextLink is not an absolute URL")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise UnexpectedResponseError(f"{shown}: @odata.count is not a non-negative integer")
