"""`trestle-etl` against a Trestle that is gone, over real HTTP: one retry budget, said.

The reported case: an unreachable Trestle made `migrate` silent for 577 s with the default
300 s budget (the `$metadata` retry loop wrapped the token's, each with a full budget).
Now a command gives up after one TRESTLE_RETRY_BUDGET without a successful answer, prints
one line naming the host, and said before, once, what it retries and until when.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from .cli_process import clean_env, trestle_etl

pytestmark = pytest.mark.integration

BUDGET_S = 10  # TRESTLE_RETRY_BUDGET may be as low as 0; 10 leaves room for a few retries
SECRET = "an-unguessable-client-secret"


@pytest.fixture
def closed_port() -> str:
    """A port nothing listens on: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers (a firewall, a hung proxy)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture(params=["closed port", "silent server"])
def gone(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(
        "closed_port" if request.param == "closed port" else "silent_server"))


@pytest.mark.parametrize("command", [("migrate",), ("sync", "--local")],
                         ids=["migrate", "sync-local"])
def test_a_command_gives_up_after_one_budget_and_said_what_it_was_waiting_for(
        gone, command, tmp_path):
    env = clean_env(TRESTLE_BASE_URL=f"{gone}/trestle/odata", TRESTLE_TOKEN_URL=f"{gone}/token",
                    TRESTLE_CLIENT_ID="someone", TRESTLE_CLIENT_SECRET=SECRET,
                    TRESTLE_RETRY_BUDGET=str(BUDGET_S),
                    # Shorter than the budget: a request may wait this long for an answer.
                    TRESTLE_HTTP_TIMEOUT="3",
                    TRESTLE_RESOURCES="Property",
                    DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite3'}",
                    REDIS_URL="redis://127.0.0.1:1/0", LOCK_DIR=str(tmp_path))
    started = time.monotonic()
    result = trestle_etl(*command, env=env, cwd=tmp_path, timeout=10 * BUDGET_S)
    elapsed = time.monotonic() - started

    assert result.returncode != 0, result.stdout
    # One budget (plus the interpreter's start), not one per nested retry loop.
    assert elapsed < 2 * BUDGET_S, f"took {elapsed:.1f} s; stderr: {result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("trestle-etl: error: ")]
    assert len(errors) == 1, result.stderr
    reason = errors[0]
    assert "127.0.0.1" in reason and f"{BUDGET_S} s retry budget" in reason, reason
    assert "TRESTLE_RETRY_BUDGET" in reason and "token request" in reason, reason
    # Said once, before the wait, what is retried and until when.
    notes = [line for line in lines if "retrying until" in line]
    assert len(notes) == 1, result.stderr
    assert re.search(r"Trestle unreachable \((ConnectionError|ReadTimeout|ConnectTimeout|"
                     r"Timeout) to 127\.0\.0\.1, token request\); retrying until "
                     r"\d\d:\d\d:\d\d UTC", notes[0]), notes[0]
    assert f"budget {BUDGET_S} s" in notes[0]
    assert lines[-1] == reason
