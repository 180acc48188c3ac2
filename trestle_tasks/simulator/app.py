"""The WSGI application: routing, authentication, quotas, faults and latency.

Every data request goes through the same steps, in the order a client would observe them
on Trestle: token check (401), quota (429), then the answer, possibly replaced by an
injected fault, delayed by the configured latency, with quota headers on all of it.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from .config import SimulatorConfig
from .control import ControlApi
from .faults import FaultInjector
from .feed import Feed
from .odata_api import ODataService, Page
from .query import QueryError
from .quota import QuotaBook
from .replication import ReplicationCursors
from .responses import (
    compress_if_accepted,
    error_response,
    proxy_error_page,
    text_response,
)
from .stats import Stats
from .tokens import TokenStore

log = logging.getLogger(__name__)

TOKEN_PATH = "/trestle/oidc/connect/token"
ODATA_PATH = "/trestle/odata"
CONTROL_PATH = "/simulator"
FIVE_XX = (500, 502, 503, 504)
ENTITY_BY_KEY = re.compile(r"(?P<set>[A-Za-z_][A-Za-z0-9_]*)\('(?P<key>(?:[^']|'')*)'\)")


class ConnectionDropped(Exception):
    """The fault handler closed the socket: there is nothing left to answer."""


class SimulatorApp:
    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._config_lock = threading.Lock()
        self.feed = Feed(config)
        self.tokens = TokenStore(config.credentials)
        self.quota = QuotaBook()
        self.faults = FaultInjector(config.fault_seed)
        self.stats = Stats()
        self.cursors = ReplicationCursors()
        self.odata = ODataService(self.feed, lambda: self._config, self.cursors, self._empty_expand)
        self.control = ControlApi(self)

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

    # -- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ConnectionDropped:
            start_response("500 Connection Dropped", [("Content-Length", "0")])
            return []
        except Exception:
            log.exception("simulator failed on %s %s", request.method, request.path)
            response = error_response(500, "Internal simulator error")
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == TOKEN_PATH:
            return self._token(request)
        if path == ODATA_PATH or path.startswith(ODATA_PATH + "/"):
            if len(request.query_string) > self._config.max_query_string_chars:
                # Refused by the web server in front of the API: no token check, no quota.
                return Response("Query String Too Long", status=414, content_type="text/html")
            self.stats.entered()
            try:
                return self._data(request, path[len(ODATA_PATH) :].strip("/"))
            finally:
                self.stats.left()
        if path.startswith(CONTROL_PATH + "/"):
            return self.control.handle(request, path[len(CONTROL_PATH) + 1 :])
        return text_response("Not Found", 404)

    # -- token endpoint

    def _token(self, request: Request) -> Response:
        form = request.form if request.method == "POST" else {}
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        well_formed = (
            form.get("grant_type") == "client_credentials"
            and form.get("scope", "api") == "api"
            and client_id
            and secret
        )
        if not well_formed or not self.tokens.credentials_valid(client_id, secret):
            self.stats.token(None)
            # Trestle answers this one in HTML, not JSON (Postman "Invalid Authentication").
            return Response("Bad Request", status=400, content_type="text/html")
        ttl = self._config.token_ttl_s
        token = self.tokens.issue(client_id, ttl)
        self.stats.token(client_id)
        body = {"access_token": token, "expires_in": int(ttl), "token_type": "Bearer"}
        response = Response(json.dumps(body), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- data requests

    def _authenticate(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.tokens.client_for(token.strip())

    def _data(self, request: Request, rest: str) -> Response:
        segments = rest.split("/") if rest else []
        label = segments[0] if segments else "$service"
        by_key = ENTITY_BY_KEY.fullmatch(label)
        if by_key:
            label = by_key["set"]  # stats by resource, not by record
        if len(segments) > 1 and segments[1] == "replication":
            label = f"{segments[0]}/replication"
        client = self._authenticate(request)
        if client is None:
            self.stats.request(None, label, 401)
            response = error_response(401, "Authorization has been denied for this request.")
            response.headers["WWW-Authenticate"] = "Bearer"
            return compress_if_accepted(request, response)
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
        delay_ms = config.latency_ms_per_request + config.latency_ms_per_record * rows
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        return compress_if_accepted(request, response)

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
