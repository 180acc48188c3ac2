"""The Redis the tests write to, picked by one setting, and how they keep out of others' data.

`TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`) names the server (host, port,
password, TLS, or a unix socket) and a database number N. The suite uses the databases
listed in DATABASES there, N and N - 1, and no other:

* N, the shared database: every test that starts no Celery worker. Any number of test
  runs may use it at once, and nothing in it is ever flushed. A key a test names itself
  starts with RUN_PREFIX (`trestle-tests:<random>:`, one per pytest process); a key the
  product names (`trestle:token:…`, `trestle:quota:…`, `trestle:alert:…`,
  `trestle:windows:…`, `trestle:trigger:…`) holds the fingerprint of a credential, and
  the tests' credentials are their own (a simulator on a port of its own, a random client
  id) and registered with own_credential(). When the session ends, forget_this_run()
  deletes those two kinds of key (SCAN, then DEL) and nothing else.
* N - 1, the Celery database: tests that start Celery workers (or Flower, or the demo's
  workers). Celery's keys (the queue lists, `_kombu.binding.*`, `unacked*`,
  `celery-task-meta-*`) take no prefix, and a worker takes whatever is queued in its
  database, so such a test has the database to itself: celery_database() empties it
  before and after the test, and only when it is empty or holds MARKER, the key written
  each time the suite empties it. A database holding anything else fails the test and is
  left as it is. One such test runs at a time per Redis: celery_database() first takes
  CELERY_LOCK (a redis-py Lock in the shared database, expiring should a run die), so
  two suites started at once take turns for these tests instead of emptying the database
  under each other (they also share the broker, RabbitMQ's default vhost). Its token
  names the holding process (host, pid, start time): a run killed on this host while
  holding it (a CI job cancelled, a laptop's Ctrl-C twice) is seen dead and its turn
  taken at once, instead of every Celery test of the next run waiting out the expiry.

This module is the only place under tests/ that names a Redis database or flushes one
(tests/unit/test_redis_space.py checks that).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
import redis
from redis.lock import Lock

from trestle_tasks.trestle.auth import credential_fingerprint

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
# Every database the suite uses, as an offset from the one TEST_REDIS_URL names.
DATABASES = {"shared": 0, "celery": -1}
RUN_PREFIX = f"trestle-tests:{uuid.uuid4().hex[:12]}:"
MARKER = "trestle-tests:celery-database"
MARKER_TEXT = b"emptied by the trestle_tasks test suite before and after each Celery test"
CELERY_LOCK = "trestle-tests:celery-database-lock"
CELERY_LOCK_TTL_S = 1200  # longer than any one Celery test; frees the turn of a killed run
CELERY_LOCK_WAIT_S = 3600
CELERY_LOCK_POLL_S = 1.0  # how often a waiting run looks whether the holder has died

_credentials: set[str] = set()
_shared_used = False


def database_number(url: str) -> int:
    """The database a Redis URL selects, as redis-py reads it (`?db=` wins over the path)."""
    parts = urlsplit(url)
    for name, value in parse_qsl(parts.query):
        if name == "db":
            return int(value)
    path = parts.path.strip("/")
    return int(path) if parts.scheme in ("redis", "rediss") and path else 0


def with_database(url: str, db: int) -> str:
    """`url` with database `db`: the path of a redis:// URL, the `db` query of a socket's."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.scheme == "unix" or any(name == "db" for name, _ in query):
        query = [(name, value) for name, value in query if name != "db"] + [("db", str(db))]
        # Rebuilt by hand: urlunsplit would drop the empty host of `unix:///path`.
        return f"{url.split('?', 1)[0].split('#', 1)[0]}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def with_password(url: str, password: str) -> str:
    """`url` with this password (percent-encoded), the user name kept."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] if at else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def redis_url(purpose: str = "shared", *, password: str | None = None,
              base: str | None = None) -> str:
    """The URL of the database for `purpose` (a key of DATABASES), on TEST_REDIS_URL's
    server; `password` replaces its password (for tests that only show the URL)."""
    global _shared_used
    base = TEST_REDIS_URL if base is None else base
    db = database_number(base) + DATABASES[purpose]
    if db < 0:
        raise ValueError(f"TEST_REDIS_URL names database {database_number(base)}; the tests "
                         f"also use the one below it (for Celery): name database 1 or above")
    url = with_database(base, db)
    if purpose == "shared":
        _shared_used = True
    return url if password is None else with_password(url, password)


def shared_client() -> redis.Redis:
    """A client of the shared database (the caller closes it)."""
    return redis.Redis.from_url(redis_url())


def run_key(*parts: str) -> str:
    """A key (or prefix, ending in ':') of this run's own in the shared database."""
    return RUN_PREFIX + ":".join(parts)


def own_credential(token_url: str, client_id: str) -> None:
    """Keys the product names after this credential are this run's: delete them at the end."""
    _credentials.add(credential_fingerprint(token_url, client_id))


def _is_ours(key: bytes) -> bool:
    return not _credentials.isdisjoint(key.decode(errors="replace").split(":"))


def forget_this_run() -> int:
    """Delete this run's keys from the shared database: those under RUN_PREFIX, and the
    product's keys of the credentials registered with own_credential(). Returns how many."""
    if not _shared_used:
        return 0
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=5, socket_timeout=30)
    try:
        doomed = list(client.scan_iter(f"{RUN_PREFIX}*", count=1000))
        if _credentials:
            doomed += [key for key in client.scan_iter("trestle:*", count=1000) if _is_ours(key)]
        for start in range(0, len(doomed), 500):
            client.delete(*doomed[start:start + 500])
        return len(doomed)
    except redis.ConnectionError:
        return 0  # no Redis: nothing of ours is in it
    finally:
        client.close()


def _describe(client: redis.Redis) -> str:
    names = [key.decode(errors="replace") for _, key in zip(range(5), client.scan_iter())]
    return ", ".join(names) + (", …" if client.dbsize() > len(names) else "")


def _empty(client: redis.Redis) -> None:
    """FLUSHDB, the marker written in the same transaction."""
    with client.pipeline(transaction=True) as pipe:
        pipe.flushdb()
        pipe.set(MARKER, MARKER_TEXT)
        pipe.execute()


def _process_start(pid: int) -> str:
    """The start time of process `pid` (clock ticks since boot, /proc/<pid>/stat field 22),
    which tells a live holder from a new process that got a dead one's pid; "" where /proc
    has no such process or is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:].split()[19]


def _process_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return not start or not Path("/proc").is_dir() or _process_start(pid) == start


def lock_token() -> str:
    """A CELERY_LOCK token naming this process: host, pid, start time, and a random part."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}:{uuid.uuid4().hex}"


def holder_is_dead(token: bytes | None) -> bool:
    """Whether a CELERY_LOCK token names a process of this host that no longer runs (a
    token of another host, or not of this form, is never judged: it waits out the TTL)."""
    if not token:
        return False
    parts = token.decode(errors="replace").split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return not _process_alive(int(parts[1]), parts[2])


# Deletes the lock only if it still holds the dead holder's token (no race with a new holder).
_BREAK_DEAD_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def take_celery_turn(turns: redis.Redis, wait_s: float = CELERY_LOCK_WAIT_S,
                     name: str = CELERY_LOCK) -> Lock | None:
    """The lock `name` (CELERY_LOCK) taken, or None after `wait_s`. A holder seen dead on
    this host loses it at once."""
    turn = turns.lock(name, timeout=CELERY_LOCK_TTL_S)
    give_up_at = time.monotonic() + wait_s
    while True:
        if turn.acquire(blocking_timeout=min(CELERY_LOCK_POLL_S, wait_s), token=lock_token()):
            return turn
        holder = turns.get(name)
        if holder_is_dead(holder):
            turns.eval(_BREAK_DEAD_LOCK, 1, name, holder)
            continue
        if time.monotonic() >= give_up_at:
            return None


@contextmanager
def celery_database() -> Iterator[redis.Redis]:
    """The Celery database, empty, for one test; emptied again afterwards. Fails the test
    (touching nothing) when the database holds keys and not MARKER: someone else's data."""
    url = redis_url("celery")
    turns = redis.Redis.from_url(redis_url("shared"))
    turn = take_celery_turn(turns)
    if turn is None:
        turns.close()
        pytest.fail(f"another test run held {CELERY_LOCK} for {CELERY_LOCK_WAIT_S} s",
                    pytrace=False)
    client = redis.Redis.from_url(url)
    try:
        if client.dbsize() and not client.exists(MARKER):
            pytest.fail(
                f"Redis database {database_number(url)} holds keys the test suite did not "
                f"write ({_describe(client)}); the Celery tests need it to themselves and "
                "would empty it. Empty it yourself, or set TEST_REDIS_URL to another "
                "database N (the suite uses N and N - 1; see tests/redis_space.py)",
                pytrace=False)
        _empty(client)
        yield client
        _empty(client)
    finally:
        client.close()
        # A lock that expired during a very long test: the next run has taken its turn.
        with contextlib.suppress(redis.exceptions.LockError):
            turn.release()
        turns.close()
