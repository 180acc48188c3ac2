"""One `requests.Session` per thread, behind one object the client and token provider hold.

requests does not promise that a Session is thread-safe, and several threads of one
process make requests: a window's page-prefetch thread while the window's own thread
fetches photo sets, `sync --local`'s window pool, the census. Each thread gets a Session
of its own on first use, with its own connection pool; nothing else changes for callers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests


class HttpSession(Protocol):
    """The requests the client and the token provider send: a `requests.Session` has them,
    and so has `SessionPerThread`."""

    def get(self, url: str, *, headers: Mapping[str, str], timeout: tuple[float, float],
            stream: bool = False) -> requests.Response: ...

    def post(self, url: str, *, data: Mapping[str, str], timeout: float,
             allow_redirects: bool = True) -> requests.Response: ...


class SessionPerThread:
    """Delegates `get` and `post` (all the client and token provider call) to the calling
    thread's own Session."""

    def __init__(self, new_session: Callable[[], requests.Session]) -> None:
        self._new_session = new_session
        self._local = threading.local()

    def current(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session()
        return session

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.current().get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.current().post(url, **kwargs)
