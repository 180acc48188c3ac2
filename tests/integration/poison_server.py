"""A small hostile Trestle stand-in over HTTP: a token endpoint, and whatever page body a
test sets (or a function of the request's path and query) for every GET."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient, new_session
from trestle_tasks.trestle.token_cache import MemoryTokenCache

QUICK_RETRY = RetryPolicy(budget_s=5, base_delay_s=0.01, max_delay_s=0.1)


class _Handler(BaseHTTPRequestHandler):
    server: PoisonServer

    def do_GET(self) -> None:
        self.server.paths.append(unquote(self.path))
        answer = self.server.answer
        body = answer(unquote(self.path)) if answer is not None else self.server.body
        self._send(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(b'{"access_token": "poison-token", "token_type": "Bearer", '
                   b'"expires_in": 3600}')

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PoisonServer(ThreadingHTTPServer):
    body: bytes = b'{"value": []}'
    answer: Callable[[str], bytes] | None = None

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []

    @property
    def root(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/odata"

    @property
    def url(self) -> str:
        return f"{self.root}/Property"

    def serve_records(self, records: list[Any]) -> None:
        self.body = page_body(records)

    def client(self) -> TrestleClient:
        session = new_session()
        tokens = TokenProvider(session=session, token_url=f"{self.root}/token",
                               client_id="poison", client_secret=Secret("poison-secret"),
                               cache=MemoryTokenCache(), retry=QUICK_RETRY, timeout_s=30)
        return TrestleClient(session=session, odata_root=self.root, tokens=tokens,
                             retry=QUICK_RETRY, timeout_s=30)


def page_body(records: list[Any]) -> bytes:
    return encode_json({"value": records}).encode()


@contextmanager
def poison_server() -> Iterator[PoisonServer]:
    server = PoisonServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
