"""A small hostile HTTP server of the tests' own, over real HTTP on loopback.

Each server answers every request with what its `answer` callable returns and records what
it was sent (method, path, headers, body), so a test can say what reached the attacker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Answer:
        return cls(status, json.dumps(payload).encode(),
                   {"Content-Type": "application/json", **headers})


@dataclass
class HostileServer:
    url: str  # http://127.0.0.1:<port>
    port: int
    seen: list[Seen]


@contextmanager
def hostile_server(answer: Callable[[Seen], Answer]) -> Iterator[HostileServer]:
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Seen(self.command, self.path, dict(self.headers.items()),
                           self.rfile.read(length) if length else b"")
            seen.append(request)
            reply = answer(request)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read `seen`

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HostileServer(f"http://127.0.0.1:{port}", port, seen)
    finally:
        server.shutdown()
        server.server_close()
