"""The bearer token is masked by value wherever an error travels (issue 22, item 3).

Before: only `Bearer <tok>` and `access_token=<tok>` were recognised; a 403 body echoing
`token=<tok>` went into the error text, and from there into `status --json`, the sync log
table, Celery results and log files. Now every token this process uses (fetched here or
read from the shared cache, fetched by another worker) is registered with the redactor.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile_http import Answer, HostileServer, Seen, hostile_server
from tests.integration.cli_process import clean_env, trestle_etl
from tests.integration.conftest import build_client, start_simulator
from trestle_tasks.core.errors import UnlicensedResourceError
from trestle_tasks.core.logs import redact
from trestle_tasks.core.masking import MASK, Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient, new_session
from trestle_tasks.trestle.query import ODataQuery
from trestle_tasks.trestle.token_cache import CachedToken, MemoryTokenCache

pytestmark = pytest.mark.integration


def _fresh(kind: str) -> str:
    # Never seen by this process's redactor before: an earlier test cannot mask it for us.
    return f"{kind}-{uuid.uuid4().hex}"


def _echoing(token: str, metadata: str = "") -> Callable[[Seen], Answer]:
    def answer(seen: Seen) -> Answer:
        if seen.method == "POST":
            return Answer.json({"access_token": token, "expires_in": 3600})
        if seen.path.endswith("/$metadata"):
            return Answer(200, metadata.encode(), {"Content-Type": "application/xml"})
        sent = seen.headers.get("Authorization", "").removeprefix("Bearer ")
        return Answer(403, f"Forbidden: token={sent} is not licensed for {seen.path}".encode(),
                      {"Content-Type": "text/plain"})
    return answer


def _client(server: HostileServer, cache: MemoryTokenCache, secret: str) -> TrestleClient:
    session, retry = new_session(), RetryPolicy(budget_s=0)
    tokens = TokenProvider(session=session, token_url=f"{server.url}/token", client_id="id",
                           client_secret=Secret(secret), cache=cache, retry=retry, timeout_s=5)
    return TrestleClient(session=session, odata_root=f"{server.url}/odata", tokens=tokens,
                         retry=retry, timeout_s=5)


def _assert_hidden(value: str, error: BaseException) -> None:
    for text in (str(error), repr(error), pickle.dumps(error).decode("latin-1"),
                 redact(f"sync failed: {error} (token={value})")):
        assert value not in text, text


def test_a_403_echoing_the_token_does_not_carry_it_into_the_error() -> None:
    token, secret = _fresh("tok"), _fresh("secret")
    with hostile_server(_echoing(token)) as server:
        client = _client(server, MemoryTokenCache(), secret)
        with pytest.raises(UnlicensedResourceError) as caught:
            client.get_page(ODataQuery("Property", top=1))
    assert MASK in str(caught.value)
    _assert_hidden(token, caught.value)
    assert secret not in redact(f"client_secret {secret}")  # the secret, by value, too


def test_a_token_another_worker_fetched_is_masked_too() -> None:
    """A worker reads the token from the shared cache without fetching it itself."""
    token, secret = _fresh("tok"), _fresh("secret")
    cache = MemoryTokenCache()
    with hostile_server(_echoing(token)) as server:
        client = _client(server, cache, secret)
        key = client._tokens.cache_key
        cache.put(key, CachedToken(token, 4e9, 3600.0), ttl_s=3600)
        with pytest.raises(UnlicensedResourceError) as caught:
            client.get_page(ODataQuery("Property", top=1))
        assert not [s for s in server.seen if s.method == "POST"]  # no fetch of its own
    _assert_hidden(token, caught.value)


def test_sync_log_status_and_stderr_hold_no_echoed_token(tmp_path: Path) -> None:
    """The whole path: `sync --local` against a server echoing the token in its 403s."""
    sim = start_simulator(records=5)
    try:
        metadata = build_client(sim).get_metadata()
    finally:
        sim.stop()
    token, secret = _fresh("tok"), _fresh("secret")
    database = tmp_path / "store.sqlite3"
    with hostile_server(_echoing(token, metadata)) as server:
        env = clean_env(TRESTLE_TOKEN_URL=f"{server.url}/token",
                        TRESTLE_BASE_URL=f"{server.url}/odata",
                        TRESTLE_CLIENT_ID="someone", TRESTLE_CLIENT_SECRET=secret,
                        TRESTLE_RESOURCES="Property", TRESTLE_RETRY_BUDGET="0",
                        DATABASE_URL=f"sqlite:///{database}", LOG_DIR=str(tmp_path / "logs"),
                        REDIS_URL="redis://127.0.0.1:1/0", LOCK_DIR=str(tmp_path))
        trestle_etl("migrate", env=env, cwd=tmp_path, timeout=120)
        synced = trestle_etl("sync", "--local", env=env, cwd=tmp_path, timeout=120)
        status = trestle_etl("status", "--json", env=env, cwd=tmp_path, timeout=120)
        assert any(token in s.headers.get("Authorization", "") for s in server.seen), \
            "the attack did not happen: the token was never sent"
    with sqlite3.connect(database) as db:
        stored = json.dumps(db.execute("SELECT * FROM etl_sync_log").fetchall(), default=str)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    everything = synced.stdout + synced.stderr + status.stdout + status.stderr + stored + logs
    assert "Forbidden" in everything, everything  # the server's message did arrive
    assert token not in everything
    assert secret not in everything
