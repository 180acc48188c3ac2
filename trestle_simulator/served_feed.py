"""One feed as its credentials see it: data, tokens, quota, faults, stats and cursors.

A multi-feed simulator is several of these behind one host (`app.py` routes a request to
the feed its token was issued for). Nothing is shared between feeds, so a token, a
replication link, a quota window or a fault draw of one feed never touches another.

A data request goes through the steps in the order a client would observe them on
Trestle: token check (401, in `app.py`), quota (429), then the answer, possibly replaced
by an injected fault, delayed by the configured latency, with quota headers on all of it.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from .config import SimulatorConfig
from .faults import FaultInjector
from .feed import Feed
from .odata_api import ODataService, Page
from .query import QueryError
from .quota import QuotaBook
from .replication import ReplicationCursors
from .responses import error_response, proxy_error_page, text_response
from .stats import Stats
from .tokens import TokenStore

ODATA_PATH = "/trestle/odata"
FIVE_XX = (500, 502, 503, 504)
ENTITY_BY_KEY = re.compile(r"(?P<set>[A-Za-z_][A-Za-z0-9_]*)\('(?P<key>(?:[^']|'')*)'\)")


class ConnectionDropped(Exception):
    """The fault handler closed the socket: there is nothing left to answer."""


def stats_label(segments: list[str]) -> str:
    """What a request counts as in the stats: the entity set, not the record."""
    label = segments[0] if segments else "$service"
    by_key = ENTITY_BY_KEY.fullmatch(label)
    if by_key:
        label = by_key["set"]
    if len(segments) > 1 and segments[1] == "replication":
        label = f"{segments[0]}/replication"
    return label


def request_kind(request: Request, segments: list[str]) -> str:
    """What a data request is, for `extra_latency_ms`: "$metadata", "census" (a
    collection request with `$top` over 1,000: only key-index selects may ask that), or
    the entity set it reads ("$service" for the service document)."""
    if segments == ["$metadata"]:
        return "$metadata"
    if len(segments) == 1 and not ENTITY_BY_KEY.fullmatch(segments[0]):
        try:
            if int(request.args.get("$top", "0")) > 1000:
                return "census"
        except ValueError:
            pass
    return stats_label(segments[:1])


class ServedFeed:
    def __init__(self, name: str, config: SimulatorConfig) -> None:
        self.name = name
        self._config = config
        self._config_lock = threading.Lock()
        self.feed = Feed(config)
        self.tokens = TokenStore(config.credentials)
        self.quota = QuotaBook()
        self.faults = FaultInjector(config.fault_seed)
        self.stats = Stats()
        self.cursors = ReplicationCursors()
        self.odata = ODataService(self.feed, lambda: self._config, self.cursors, self._empty_expand)

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change runtime-adjustable settings (ValueError when not allowed or invalid)."""
        with self._config_lock:
            updated = self._config.with_changes(changes)
            if updated.fault_seed != self._config.fault_seed:
                self.faults.reseed(updated.fault_seed)
            self._config = updated
        return updated.runtime_view()

    # -- data requests of an authenticated client of this feed

    def answer(self, request: Request, segments: list[str], client: str) -> Response:
        """Charge the quota, answer (or fault), count, sleep the latency."""
        label = stats_label(segments)
        config = self._config
        quota = self.quota.charge(client, config.minute_quota, config.hour_quota)
        rows = 0
        if not quota.allowed:
            response = self._too_many(config)
        elif request.method not in ("GET", "HEAD"):
            response = error_response(405, f"The method {request.method} is not allowed here")
        else:
            try:
                response, rows = self._answer(request, segments, config)
            except QueryError as exc:
                response = error_response(exc.status, exc.message, exc.code)
            except ConnectionDropped:
                self.stats.request(client, label, "reset")
                raise
        for name, value in quota.headers(config.quota_headers_as_float):
            response.headers[name] = value
        self.stats.request(client, label, response.status_code)
        if rows:
            self.stats.records(label, rows)
        delay_ms = (config.latency_ms_per_request + config.latency_ms_per_record * rows
                    + config.extra_latency_ms.get(request_kind(request, segments), 0.0))
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        return response

    def _too_many(self, config: SimulatorConfig) -> Response:
        response = error_response(
            429, "API quota exceeded for this credential; wait for the quota window to reset"
        )
        if config.retry_after_on_429 is not None:
            response.headers["Retry-After"] = str(int(config.retry_after_on_429))
        return response

    def _answer(
        self, request: Request, segments: list[str], config: SimulatorConfig
    ) -> tuple[Response, int]:
        root = f"{request.scheme}://{request.host}{ODATA_PATH}"
        if not segments:
            return self.odata.service_document(root), 0
        if segments == ["$metadata"]:
            return self.odata.metadata(), 0
        by_key = ENTITY_BY_KEY.fullmatch(segments[0])
        resource = by_key["set"] if by_key else segments[0]
        if resource in config.unlicensed:
            status = int(config.unlicensed[resource])
            raise QueryError(
                f"Your subscription is not licensed for the resource '{resource}'",
                status,
            )
        if resource not in self.feed.schema.entity_sets or len(segments) > 2:
            raise QueryError(
                f"Resource not found for the segment '{'/'.join(segments)}'", 404, "NotFound"
            )
        params = list(request.args.items(multi=True))
        fault = self.faults.draw(config)
        if fault is not None:
            self.stats.fault(fault)
            if fault == "connection_reset":
                _drop_connection(request)
            if fault != "truncated_body":
                return self._fault_response(fault, config), 0
        if by_key:
            key = by_key["key"].replace("''", "'")
            page = self.odata.entity(resource, key, params, root)
        else:
            page = self._page(resource, segments, params, request, root)
        if fault == "truncated_body":
            body = page.response.get_data()
            # Half the JSON with a matching Content-Length: the client reads a complete
            # response that does not parse (documented choice; see README).
            page.response.set_data(body[: len(body) // 2])
        return page.response, page.rows

    def _page(
        self,
        resource: str,
        segments: list[str],
        params: list[tuple[str, str]],
        request: Request,
        root: str,
    ) -> Page:
        if len(segments) == 1:
            return self.odata.collection(resource, params, root)
        if segments[1] == "$count":
            return Page(self.odata.count(resource, params), 0)
        if segments[1] == "replication":
            return self.odata.replication(resource, request.args.get("id", ""), root)
        raise QueryError(
            f"Resource not found for the segment '{'/'.join(segments)}'", 404, "NotFound"
        )

    def _fault_response(self, fault: str, config: SimulatorConfig) -> Response:
        if fault == "429":
            return self._too_many(config)
        if fault == "html_error":
            return proxy_error_page(self.faults.choose((502, 503)))
        status = self.faults.choose(FIVE_XX)
        if self.faults.choose((True, False)):
            message = (
                "The query took too long to run" if status == 504 else "An error has occurred."
            )
            return error_response(status, message)
        return text_response(
            {
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }[status],
            status,
        )

    def _empty_expand(self) -> bool:
        if self.faults.empty_expand(self._config):
            self.stats.fault("empty_expand")
            return True
        return False


def _drop_connection(request: Request) -> None:
    """Close the client's socket without a response; the client sees a reset/EOF."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            # Linger 0 makes the eventual close an RST rather than an orderly FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionDropped
