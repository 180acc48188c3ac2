"""One deadline over a whole answer, headers included.

requests' read timeout is per socket read: a server that sends its status line and then a
header byte every half second never trips it (http.client allows 100 header lines of 64 KB
each: days). The body has a watchdog of its own (bounded_body.py), but the headers are read
inside `session.get`, before the client holds the response. So the sessions the client
uses (`new_session`) make their connections through `DeadlineAdapter`, whose connections
hand their socket, as they start reading an answer, to the deadline the calling thread
has opened (`answer_deadline`); at the deadline it is shut down, which ends the read.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class _Watcher:
    """One daemon thread for every deadline of the process: a thread of its own per
    request (threading.Timer) costs about 0.4 ms, more than a small page's parsing."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, AnswerDeadline]] = []  # a heap, soonest first
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, at: float, deadline: AnswerDeadline) -> None:
        with self._cond:
            heapq.heappush(self._due, (at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="trestle-deadlines",
                                                daemon=True)
                self._thread.start()
            elif self._due[0][2] is deadline:  # sooner than what the thread waits for
                self._cond.notify()

    def _run(self) -> None:
        while True:
            for deadline in self._next_due():
                deadline.fire()

    def _next_due(self) -> list[AnswerDeadline]:
        with self._cond:
            while True:
                while self._due and self._due[0][2].cancelled:
                    heapq.heappop(self._due)
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    due = []
                    while self._due and self._due[0][0] <= now:
                        due.append(heapq.heappop(self._due)[2])
                    return due
                self._cond.wait(self._due[0][0] - now if self._due else None)


_watcher = _Watcher()


def _after_fork_in_child() -> None:
    # The parent's thread is not in the child, and its lock may have been held mid-fork.
    global _watcher
    _watcher = _Watcher()


os.register_at_fork(after_in_child=_after_fork_in_child)


class AnswerDeadline:
    """Shuts down the socket of the answer being read once `total_s` have passed."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self.fired = False
        self.cancelled = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        _watcher.add(time.monotonic() + max(total_s, 0.0), self)

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            fired = self.fired
        if fired:  # already late: end the read before it starts
            shut_down(sock)

    def fire(self) -> None:
        with self._lock:
            if self.cancelled:  # the answer is whole: its socket may be another's now
                return
            self.fired = True
            sock = self._sock
        if sock is not None:
            shut_down(sock)

    @property
    def watching(self) -> bool:
        """Whether a socket is in its hands (the session's connections are watched ones)."""
        return self._sock is not None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True


def shut_down(sock: socket.socket) -> None:
    """End any read blocked on `sock` (another thread's): it sees the end of the stream.
    The plain socket's shutdown even for TLS: `SSLSocket.shutdown` also drops its TLS
    state, which the reading thread is still using."""
    with contextlib.suppress(OSError):  # already closed: the read has ended anyway
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def answer_deadline(total_s: float) -> Iterator[AnswerDeadline]:
    """A deadline for the requests this thread sends inside the block."""
    deadline = AnswerDeadline(total_s)
    previous = getattr(_current, "deadline", None)
    _current.deadline = deadline
    try:
        yield deadline
    finally:
        deadline.cancel()
        _current.deadline = previous


def _watch(conn: HTTPConnection) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None and isinstance(conn.sock, socket.socket):
        deadline.attach(conn.sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections whose answers an `answer_deadline` bounds."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool, "https": _WatchedHTTPSPool,
        }
