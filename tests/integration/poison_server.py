"""A small hostile Trestle stand-in: serves whatever page body a test sets, over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trestle_tasks.store.jsontext import encode_json


class _Handler(BaseHTTPRequestHandler):
    server: PoisonServer

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PoisonServer(ThreadingHTTPServer):
    body: bytes = b'{"value": []}'

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/odata/Property"

    def serve_records(self, records: list[Any]) -> None:
        self.body = encode_json({"value": records}).encode()

    def serve_text(self, text: str) -> None:
        self.body = text.encode()


@contextmanager
def poison_server() -> Iterator[PoisonServer]:
    server = PoisonServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
