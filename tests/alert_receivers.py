"""Real receivers for alert tests: an SMTP server (aiosmtpd) and an HTTP webhook endpoint,
each on a free loopback port, each able to refuse its first N deliveries."""

from __future__ import annotations

import email
import json
import socket
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class _Failures:
    """Refuse the next `remaining` deliveries; counts every refusal."""

    remaining: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if self.remaining > 0:
                self.remaining -= 1
                self.refused += 1
                return True
            return False


class SmtpReceiver:
    """aiosmtpd in its own thread; `messages` holds every accepted mail, parsed."""

    def __init__(self, *, tls_context: Any = None, login: tuple[str, str] | None = None) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.failures = _Failures()
        self._login = login
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=tls_context is not None)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def fail_next(self, count: int) -> None:
        self.failures = _Failures(count)

    def clear(self) -> None:
        self.messages.clear()
        self.envelopes.clear()
        self.failures = _Failures()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self._login is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self._login)
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server says 535

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failures.take():
            return "451 4.3.0 try again later"
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class HttpReceiver:
    """Records every POST (path, JSON body); answers 500 while told to fail."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.failures = _Failures()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.failures.take():
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.requests.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int) -> None:
        self.failures = _Failures(count)

    def clear(self) -> None:
        self.requests.clear()
        self.failures = _Failures()

    def bodies(self, path: str) -> list[Any]:
        return [body for p, body in self.requests if p == path]
