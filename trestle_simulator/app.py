"""The WSGI application: the host every feed is served from.

Like Trestle, one host and one set of URLs serve every feed; the credential a bearer token
was issued to decides which feed (`ServedFeed`) answers. This module routes: the token
endpoint (which feed owns the client id), data requests (which feed issued the token),
and the control API (which feed `?feed=` names). What a feed then does with a request is
in `served_feed.py`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from werkzeug.wrappers import Request, Response

from .config import DEFAULT_FEED, SERVER_WIDE_FIELDS, SimulatorConfig
from .control import ControlApi
from .faults import FaultInjector
from .feed import Feed
from .odata_api import ODataService
from .quota import QuotaBook
from .replication import ReplicationCursors
from .responses import compress_if_accepted, error_response, text_response
from .served_feed import ODATA_PATH, ConnectionDropped, ServedFeed, stats_label
from .stats import Stats
from .tokens import TokenStore

log = logging.getLogger(__name__)

TOKEN_PATH = "/trestle/oidc/connect/token"
CONTROL_PATH = "/simulator"
__all__ = ["CONTROL_PATH", "ODATA_PATH", "TOKEN_PATH", "FeedNotFound", "SimulatorApp"]


class FeedNotFound(LookupError):
    """No feed answers to the name given (or none was given and several are served)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class SimulatorApp:
    def __init__(self, config: SimulatorConfig) -> None:
        self.server_config = config  # as given: the address, prerender, every feed
        self.feeds: dict[str, ServedFeed] = {
            name: ServedFeed(name, settings) for name, settings in config.feed_settings().items()
        }
        # Where requests nobody can be charged for are counted (no valid token, a token
        # request for an unknown client): `default` when served, else the first feed.
        self.primary = self.feeds.get(DEFAULT_FEED) or next(iter(self.feeds.values()))
        self._by_client = {
            client_id: served
            for served in self.feeds.values()
            for client_id in served.config.credentials
        }
        self.control = ControlApi(self)

    def feed_named(self, name: str | None) -> ServedFeed:
        """The feed called `name`; None = the only feed, or `default` among several."""
        if name is None or name == "":
            if len(self.feeds) == 1 or DEFAULT_FEED in self.feeds:
                return self.primary
            raise FeedNotFound(
                f"this simulator serves several feeds ({', '.join(self.feeds)}) and none is "
                "called 'default': name one with ?feed=NAME",
                400,
            )
        served = self.feeds.get(name)
        if served is None:
            raise FeedNotFound(
                f"unknown feed {name!r}; this simulator serves: {', '.join(self.feeds)}", 404
            )
        return served

    # The single-feed view, as before feeds existed: the feed `feed_named(None)` picks.

    @property
    def config(self) -> SimulatorConfig:
        return self.feed_named(None).config

    @property
    def feed(self) -> Feed:
        return self.feed_named(None).feed

    @property
    def tokens(self) -> TokenStore:
        return self.feed_named(None).tokens

    @property
    def quota(self) -> QuotaBook:
        return self.feed_named(None).quota

    @property
    def stats(self) -> Stats:
        return self.feed_named(None).stats

    @property
    def faults(self) -> FaultInjector:
        return self.feed_named(None).faults

    @property
    def cursors(self) -> ReplicationCursors:
        return self.feed_named(None).cursors

    @property
    def odata(self) -> ODataService:
        return self.feed_named(None).odata

    def configure(self, changes: dict[str, Any], feed: str | None = None) -> dict[str, Any]:
        """Change runtime-adjustable settings of one feed (ValueError when not allowed or
        invalid); server-wide ones (the query string limit) change on every feed."""
        target = self.feed_named(feed)
        view = target.configure(changes)
        shared = {name: value for name, value in changes.items() if name in SERVER_WIDE_FIELDS}
        if shared:
            for served in self.feeds.values():
                if served is not target:
                    served.configure(shared)
        return view

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
            # The web server in front of every feed: one limit (SERVER_WIDE_FIELDS).
            if len(request.query_string) > self.primary.config.max_query_string_chars:
                # Refused before the API sees it: no token check, no quota.
                return Response("Query String Too Long", status=414, content_type="text/html")
            return self._data(request, path[len(ODATA_PATH) :].strip("/"))
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
        # The client id names the feed: a failure is that feed's, whichever the others.
        served = self._by_client.get(client_id)
        if not well_formed or served is None or not served.tokens.credentials_valid(
            client_id, secret
        ):
            (served or self.primary).stats.token(None)
            # Trestle answers this one in HTML, not JSON (Postman "Invalid Authentication").
            return Response("Bad Request", status=400, content_type="text/html")
        ttl = served.config.token_ttl_s
        token = served.tokens.issue(client_id, ttl)
        served.stats.token(client_id)
        body = {"access_token": token, "expires_in": int(ttl), "token_type": "Bearer"}
        response = Response(json.dumps(body), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- data requests

    def _authenticate(self, request: Request) -> tuple[ServedFeed, str] | None:
        """The feed that issued the request's bearer token, and its client id."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        for served in self.feeds.values():
            client = served.tokens.client_for(token.strip())
            if client is not None:
                return served, client
        return None

    def _data(self, request: Request, rest: str) -> Response:
        segments = rest.split("/") if rest else []
        routed = self._authenticate(request)
        served = routed[0] if routed else self.primary
        served.stats.entered()
        try:
            if routed is None:
                served.stats.request(None, stats_label(segments), 401)
                response = error_response(401, "Authorization has been denied for this request.")
                response.headers["WWW-Authenticate"] = "Bearer"
            else:
                response = served.answer(request, segments, routed[1])
        finally:
            served.stats.left()
        return compress_if_accepted(request, response)
