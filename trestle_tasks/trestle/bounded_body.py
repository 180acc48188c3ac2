"""Reading a response body within bounds: a cap on its decompressed size, one deadline
over the whole read.

Left to requests, a body is read whole and inflated as it comes (a 1 MB gzip bomb of
zeros becomes gigabytes in memory), and the read timeout is per socket read (a body
trickled a byte every half second never times out). So the client asks for the body as a
stream and reads it here: decompressed in chunks (urllib3 inflates at most about a chunk a
step) and counted, stopping as soon as the count passes the cap; and a watchdog shuts the
socket down when the deadline passes, which wakes a read blocked on it.

Both are the server's fault and may pass (a proxy gone wrong, a bad node): the error is
`InvalidResponseError`, retried within the budget like a body cut short.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import requests
import urllib3
from isal import isal_zlib

from trestle_tasks.core.errors import InvalidResponseError
from trestle_tasks.core.masking import mask_url
from trestle_tasks.trestle.deadline import AnswerDeadline
from trestle_tasks.trestle.http import connection_error

MEGABYTE = 1024 * 1024
DEFAULT_MAX_BYTES = 256 * MEGABYTE
CHUNK = 64 * 1024
# The whole answer (headers and body) must arrive within this many read timeouts: a page
# that streams steadily for minutes is normal (a 300,000-pair census), one that never
# ends is not.
WHOLE_ANSWER_TIMEOUTS = 5
# isal's stubs declare its error an instance of Exception; it is the class.
_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)


def read_body(
    response: requests.Response,
    url: str,
    *,
    max_bytes: int,
    started: float,
    total_s: float,
    limit_name: str = "TRESTLE_MAX_RESPONSE_MB",
    clock: Callable[[], float] = time.monotonic,
    guard: AnswerDeadline | None = None,
) -> bytes:
    """The body of a streamed response (also kept as `response.content`), or an
    `InvalidResponseError` once it passes `max_bytes` decompressed, or once `total_s`
    have passed since `started` (a `clock()` value: when the request was sent).
    `limit_name` names the setting of the size cap, for the message. `guard`: the
    caller's deadline, if it already watches this answer's socket (no second watchdog)."""
    deadline = started + total_s
    if response._content is not False or response.raw is None:
        # Already read (a session that does not stream, a test's canned answer).
        body = response.content or b""
        if len(body) > max_bytes:
            raise _too_big(response, url, max_bytes, limit_name)
        return body
    watchdog = guard if guard is not None and guard.watching else _own_watchdog(
        response, deadline - clock())
    parts: list[bytes] = []
    size = 0
    done = False
    try:
        for chunk in _decoded_chunks(response):
            size += len(chunk)
            if size > max_bytes:
                raise _too_big(response, url, max_bytes, limit_name)
            if watchdog.fired or clock() > deadline:
                raise too_slow(response.status_code, url, total_s)
            parts.append(chunk)
        if watchdog.fired:  # a body read until the connection closes ends "normally"
            raise too_slow(response.status_code, url, total_s)
        done = True
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if watchdog.fired:
            raise too_slow(response.status_code, url, total_s) from None
        raise connection_error(exc, url) from None
    finally:
        watchdog.cancel()
        if not done:
            response.close()  # the rest of the body is not wanted: drop the connection
    body = b"".join(parts)
    response._content = body
    response._content_consumed = True
    return body


def _decoded_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body in decompressed chunks of at most CHUNK bytes. gzip and deflate are
    inflated here, a bounded step at a time: urllib3 inflates whatever one socket read
    brought at once, and 64 KB of a gzip bomb of zeros is 64 MB (the whole 1 MB bomb,
    arrived in one read, a gigabyte). Other encodings are left to urllib3."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        yield from response.raw.stream(CHUNK, decode_content=True)
        return
    # ISA-L's inflate (zlib's interface) takes a third of zlib's CPU: a page of wide
    # records is ~19 MB inflated, and inflating was a sixth of a worker's CPU at real width.
    inflater: Any = None
    head = b""
    for data in response.raw.stream(CHUNK, decode_content=False):
        if inflater is None:
            # The wrapper is decided on the first two bytes, however the socket split them.
            head += data
            if len(head) < 2:
                continue
            inflater, data = isal_zlib.decompressobj(_window_bits(encoding, head)), head
        while data:
            try:
                out = inflater.decompress(data, CHUNK)
            except _INFLATE_ERROR:
                raise InvalidResponseError(
                    f"HTTP {response.status_code}: the {encoding} body does not "
                    "decompress", status=response.status_code) from None
            if out:
                yield out
            data = inflater.unconsumed_tail
            if inflater.eof:
                data = b""
    if inflater is None:
        if head:
            raise InvalidResponseError(
                f"HTTP {response.status_code}: the {encoding} body does not decompress "
                f"({len(head)} byte)", status=response.status_code)
        return  # an empty body
    while tail := inflater.decompress(b"", CHUNK) if not inflater.eof else b"":
        yield tail
    if rest := inflater.flush():
        yield rest


def _window_bits(encoding: str, head: bytes) -> int:
    """47: a gzip or zlib header, told apart by the inflater itself; -15 (raw deflate, as
    some servers send "deflate") for a "deflate" body that starts with neither."""
    gzip_magic = head[:2] == b"\x1f\x8b"
    zlib_header = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return -15 if encoding == "deflate" and not (gzip_magic or zlib_header) else 47


def _own_watchdog(response: requests.Response, left_s: float) -> AnswerDeadline:
    """A deadline on this body's socket, for a session whose connections are not watched
    (not `new_session`'s): without the socket, the deadline is checked between chunks."""
    watchdog = AnswerDeadline(left_s)
    sock = _socket_of(response.raw)
    if sock is not None:
        watchdog.attach(sock)
    return watchdog


def _socket_of(raw: Any) -> socket.socket | None:
    """The socket under a urllib3 response, for the watchdog (None: the deadline is then
    checked between chunks only)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(fp, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _too_big(response: requests.Response, url: str, max_bytes: int,
             limit_name: str) -> InvalidResponseError:
    return InvalidResponseError(
        f"HTTP {response.status_code} from {mask_url(url)}: the body is over "
        f"{max_bytes / MEGABYTE:g} MB decompressed ({limit_name}); stopped reading it",
        status=response.status_code, url=mask_url(url),
    )


def too_slow(status: int | None, url: str, total_s: float) -> InvalidResponseError:
    """The answer (its headers, when `status` is None) was still arriving at the deadline."""
    what = "the headers were" if status is None else f"HTTP {status}: the body was"
    return InvalidResponseError(
        f"{mask_url(url)}: {what} still arriving {total_s:g} s after the request was sent "
        f"(the whole answer's deadline: {WHOLE_ANSWER_TIMEOUTS} x TRESTLE_HTTP_TIMEOUT); "
        "stopped reading",
        status=status, url=mask_url(url),
    )
