"""Serving the simulator: blocking (`serve`, for `trestle-etl simulator`) or in a thread
(`start_in_thread`, for tests, benchmarks and the demo).

The server is Werkzeug's threaded WSGI server: concurrent requests are answered (and
sleep their simulated latency) concurrently, like a real API behind a load balancer.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import CONTROL_PATH, ODATA_PATH, TOKEN_PATH, SimulatorApp
from .config import SimulatorConfig
from .feed_handle import FeedHandle

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: benchmarks make hundreds of thousands of requests."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("%s: " + message, type, *args)


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bind ourselves so "port in use" is an OSError we can word, not a sys.exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(
                exc.errno,
                f"cannot serve the Trestle simulator on {host}:{port}: the port is already in "
                "use (stop the other server or choose another --port)",
            ) from exc
        raise OSError(
            exc.errno, f"cannot serve the Trestle simulator on {host}:{port}: {exc.strerror}"
        ) from exc
    return sock


def _make_server(app: SimulatorApp, host: str, port: int) -> BaseWSGIServer:
    sock = _listening_socket(host, port)
    try:
        return make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler, fd=sock.fileno()
        )
    finally:
        sock.close()  # Werkzeug works on its own duplicate of the descriptor


def _urls(host: str, port: int) -> tuple[str, str, str]:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - just a comparison
    if ":" in shown:
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}"
    return base, base + TOKEN_PATH, base + ODATA_PATH


class RunningSimulator:
    """A simulator serving in a daemon thread, with the control API as methods.

    The methods act on the default feed (the only one, or `default` among several, as
    the HTTP control API without `?feed=`); `feed(name)` reaches any feed.
    """

    def __init__(self, app: SimulatorApp, server: BaseWSGIServer, thread: threading.Thread):
        self.app = app
        self._server = server
        self._thread = thread
        self.port: int = server.port
        self.base_url, self.token_url, self.odata_root = _urls(server.host, server.port)
        self.control_url = self.base_url + CONTROL_PATH

    @property
    def feeds(self) -> list[str]:
        """The names of the served feeds, in declaration order."""
        return list(self.app.feeds)

    def feed(self, name: str | None = None) -> FeedHandle:
        """The feed called `name` (None: the default one); LookupError when not served."""
        return FeedHandle(self.app, self.app.feed_named(name).name)

    @property
    def config(self) -> SimulatorConfig:
        return self.feed().config

    @property
    def client_id(self) -> str:
        return self.feed().client_id

    @property
    def client_secret(self) -> str:
        return self.feed().client_secret

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control API of the default feed, in-process

    def stats(self) -> dict[str, Any]:
        return self.feed().stats()

    def reset_stats(self) -> None:
        self.feed().reset_stats()

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.feed().configure(**changes)

    def revoke_tokens(self) -> int:
        return self.feed().revoke_tokens()

    def mutate(
        self, resource: str = "Property", count: int = 0, seed: int = 0, delete: int = 0
    ) -> dict[str, list[str]]:
        return self.feed().mutate(resource, count=count, seed=seed, delete=delete)

    def upsert(self, resource: str, records: list[dict[str, Any]]) -> list[str]:
        return self.feed().upsert(resource, records)

    def delete(self, resource: str, key: str) -> bool:
        return self.feed().delete(resource, key)

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Every current record of `resource`, in key order."""
        return self.feed().records(resource)

    def keys(self, resource: str) -> list[str]:
        """Every current key of `resource`, in key order (cheap: no record generation)."""
        return self.feed().keys(resource)


def _prepare(app: SimulatorApp) -> None:
    """Index every feed now (prerender: and generate its Property records), or start
    indexing in the background; requests arriving meanwhile wait for the index they need."""
    if app.server_config.prerender:
        for served in app.feeds.values():
            served.feed.warm_up()
            served.feed.prerender()
    else:
        _warm_up_in_background(app)


def _warm_up_in_background(app: SimulatorApp) -> None:
    # Requests arriving meanwhile simply wait for the index they need (it is locked).
    def warm_up() -> None:
        for served in app.feeds.values():
            served.feed.warm_up()

    threading.Thread(target=warm_up, name="simulator-warm-up", daemon=True).start()


def start_in_thread(config: SimulatorConfig | None = None) -> RunningSimulator:
    """Generate the feed, start serving on a daemon thread, return once listening."""
    app = SimulatorApp(config or SimulatorConfig())
    server = _make_server(app, app.server_config.host, app.server_config.port)
    _prepare(app)
    thread = threading.Thread(target=server.serve_forever, name="trestle-simulator", daemon=True)
    thread.start()
    return RunningSimulator(app, server, thread)


def serve(
    config: SimulatorConfig,
    on_ready: Callable[[str, str], None] | None = None,
) -> None:
    """Serve until interrupted. `on_ready(token_url, odata_root)` runs once listening.

    Raises OSError with a readable message when the port is taken.
    """
    app = SimulatorApp(config)
    server = _make_server(app, config.host, config.port)
    _, token_url, odata_root = _urls(server.host, server.port)
    _prepare(app)  # prerendering before announcing: a benchmark's clock starts after this
    if on_ready is not None:
        on_ready(token_url, odata_root)
    server.serve_forever()  # Werkzeug stops quietly on KeyboardInterrupt and closes
