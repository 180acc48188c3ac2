"""A small hostile HTTP server of the tests' own, over real HTTP on loopback, for the
tests of issue 22 item 8 (unbounded responses): the token POST is answered, every GET is
the test's `route`; and a client built as a worker builds it."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from trestle_tasks.core.errors import RetriesExhaustedError
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient, new_session
from trestle_tasks.trestle.token_cache import MemoryTokenCache

Route = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def hostile(route: Route, *, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A server answering the token POST itself and every GET with `route`; yields its
    base URL (`/token`, `/odata`); over TLS with the `tls` context."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            send_json(self, {"access_token": "tok", "token_type": "Bearer",
                             "expires_in": 3600})

        def do_GET(self) -> None:
            # The client hanging up mid-answer is what a test wants to see.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                route(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def send_json(handler: BaseHTTPRequestHandler, payload: object) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def client_for(base: str, *, timeout_s: float = 30, budget_s: float = 0.0,
               session: requests.Session | None = None) -> TrestleClient:
    """A client as a worker builds it (`new_session`), or over `session`."""
    retry = RetryPolicy(budget_s=budget_s, base_delay_s=0.01, max_delay_s=0.05)
    session = session if session is not None else new_session()
    tokens = TokenProvider(session=session, token_url=f"{base}/token", client_id="id",
                           client_secret=Secret("a-long-client-secret"),
                           cache=MemoryTokenCache(), retry=retry, timeout_s=timeout_s)
    return TrestleClient(session=session, odata_root=f"{base}/odata", tokens=tokens,
                         retry=retry, timeout_s=timeout_s)


def cause_of(error: BaseException) -> BaseException:
    """The error a retry loop gave up on (or the error itself)."""
    return error.__cause__ if isinstance(error, RetriesExhaustedError) and error.__cause__ \
        else error
