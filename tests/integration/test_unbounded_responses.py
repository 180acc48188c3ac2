"""Issue 22 item 8: a hostile server cannot make one response unbounded.

A small server of the test's own, over real HTTP on loopback, sends a gzip bomb (under
1 MB that inflates to 512 MB) or trickles a body a byte every half second (each socket
read succeeds: a per-read timeout never fires). The client must stop each with a clear,
retriable error, within a cap on memory and a deadline over the whole answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from trestle_tasks.core.errors import InvalidResponseError
from trestle_tasks.core.settings import load_settings
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.query import ODataQuery
from trestle_tasks.trestle.token_cache import MemoryTokenCache
from trestle_tasks.worker import factory

from .hostile_stream import cause_of, client_for, hostile

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# --- a gzip bomb --------------------------------------------------------------------------

BOMB_MB = 512


def gzip_bomb(inflated_mb: int) -> bytes:
    """A valid OData page whose padding inflates to `inflated_mb` MB (about a thousandth
    of that on the wire), built a MB at a time: the test's own memory stays small."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip wrapper
    parts = [deflate.compress(b'{"value": [], "padding": "')]
    block = b"0" * (1024 * 1024)
    parts += [deflate.compress(block) for _ in range(inflated_mb)]
    parts += [deflate.compress(b'"}'), deflate.flush()]
    return b"".join(parts)


# The child reads the bomb with the product's client as a worker builds it (the default
# cap) and reports its outcome and its peak RSS: a process of its own, so the figure is
# the read's alone.
CHILD = """
import json, sys
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient, new_session
from trestle_tasks.trestle.query import ODataQuery
from trestle_tasks.trestle.token_cache import MemoryTokenCache

base = sys.argv[1]
retry = RetryPolicy(budget_s=0)
session = new_session()
tokens = TokenProvider(session=session, token_url=base + "/token", client_id="id",
                       client_secret=Secret("a-long-client-secret"),
                       cache=MemoryTokenCache(), retry=retry, timeout_s=60)
client = TrestleClient(session=session, odata_root=base + "/odata", tokens=tokens,
                       retry=retry, timeout_s=60)
try:
    page = client.get_page(ODataQuery("Property", top=10))
    outcome = "a page of %d records" % len(page.records)
except Exception as error:
    cause = error.__cause__ or error
    outcome = "%s: %s" % (type(cause).__name__, cause)
# VmHWM, this process's own peak: getrusage's ru_maxrss keeps the peak of the process
# it was forked from (Linux carries it across exec), a whole test session's in the suite.
with open("/proc/self/status") as status:
    peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
print(json.dumps({"outcome": outcome, "peak_mb": peak_mb}))
"""


def read_in_child(base: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, base], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_gzip_bomb_is_stopped_at_the_cap_not_inflated_whole():
    bomb = gzip_bomb(BOMB_MB)
    assert len(bomb) < 1024 * 1024  # under 1 MB on the wire

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.wfile.write(bomb)

    with hostile(route) as base:
        seen = read_in_child(base)
    # Before: "a page of 0 records" after inflating all 512 MB (peak RSS about 1.1 GB).
    assert str(seen["outcome"]).startswith("InvalidResponseError"), seen
    assert "MB decompressed (TRESTLE_MAX_RESPONSE_MB)" in str(seen["outcome"])
    assert float(str(seen["peak_mb"])) < 400, seen
    print(f"gzip bomb: peak {seen['peak_mb']:.0f} MB")


def test_a_body_under_the_cap_is_read_whole_through_gzip():
    page = {"value": [{"ListingKey": f"k{i}", "Remarks": "x" * 1000} for i in range(500)]}
    body = zlib.compress(json.dumps(page).encode(), 9, wbits=31)

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with hostile(route) as base:
        got = client_for(base).get_page(ODataQuery("Property"))
    assert got.records == page["value"]


# --- a trickled body ------------------------------------------------------------------------


@pytest.mark.parametrize("session", ["the client's own", "a plain requests.Session"])
def test_a_trickled_body_ends_at_the_whole_answer_deadline(session):
    """1 byte every 0.5 s: each socket read succeeds well within the 1 s read timeout, so
    only a deadline over the whole answer (5 x the timeout) ends it. A session without
    the client's watched connections is bounded too (the body's own watchdog)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(100000):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.5)

    plain = requests.Session() if session.startswith("a plain") else None
    with hostile(route) as base:
        outcome, elapsed = fetch_in_thread(client_for(base, timeout_s=1.0, session=plain), 30)
    # Before: still reading after 30 s (and after 50,000 s, the whole body's trickle).
    assert outcome, f"the trickled body was still being read after {elapsed:.0f} s"
    error = cause_of(outcome[0]) if outcome[0] is not None else None
    assert isinstance(error, InvalidResponseError), outcome
    assert error.retriable
    assert "HTTP 200: the body was still arriving 5 s after the request was sent" in str(error)
    assert 4.5 <= elapsed < 10, elapsed


def fetch_in_thread(client: TrestleClient, wait_s: float) -> tuple[list[BaseException | None],
                                                                      float]:
    """What `get_page` raised (None: it returned), and after how long; an empty list if it
    was still reading after `wait_s`."""
    outcome: list[BaseException | None] = []

    def fetch() -> None:
        try:
            client.get_page(ODataQuery("Property"))
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    started = time.monotonic()
    reader = threading.Thread(target=fetch, daemon=True)
    reader.start()
    reader.join(wait_s)
    return outcome, time.monotonic() - started


def test_trickled_headers_end_at_the_whole_answer_deadline():
    """The status line, then a header byte every 0.5 s: inside `session.get`, before the
    client holds a response, so only a deadline on the connection itself ends it."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100000):
            handler.wfile.write(b"a")
            handler.wfile.flush()
            time.sleep(0.5)

    with hostile(route) as base:
        outcome, elapsed = fetch_in_thread(client_for(base, timeout_s=1.0), 30)
    # Before: still reading after 30 s (http.client takes 100 header lines of 64 KB: days).
    assert outcome, f"the trickled headers were still being read after {elapsed:.0f} s"
    error = cause_of(outcome[0]) if outcome[0] is not None else None
    assert isinstance(error, InvalidResponseError), outcome
    assert "the headers were still arriving 5 s after the request was sent" in str(error)
    assert 4.5 <= elapsed < 10, elapsed

def test_the_cap_is_the_setting_a_worker_is_built_with():
    """TRESTLE_MAX_RESPONSE_MB=1: a 2 MB page is refused, however well it compresses."""
    body = json.dumps({"value": [], "padding": "0" * 2 * 1024 * 1024}).encode()

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with hostile(route) as base:
        settings = load_settings({
            "TRESTLE_BASE_URL": f"{base}/odata", "TRESTLE_TOKEN_URL": f"{base}/token",
            "TRESTLE_CLIENT_ID": "id", "TRESTLE_CLIENT_SECRET": "a-long-client-secret",
            "TRESTLE_MAX_RESPONSE_MB": "1", "TRESTLE_RETRY_BUDGET": "0",
        }, env_file=None)
        tokens = factory.token_provider(settings, MemoryTokenCache())
        client = factory.trestle_client(settings, tokens=tokens,
                                        limiter=factory.local_quota_limiter(settings))
        with pytest.raises(Exception) as caught:
            client.get_page(ODataQuery("Property"))
    assert "over 1 MB decompressed (TRESTLE_MAX_RESPONSE_MB)" in str(cause_of(caught.value))
