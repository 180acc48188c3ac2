"""The README's promises, driven as a user would: `trestle-etl` in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter

import pytest

from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.worker.runtime import LocalRuntime

pytestmark = pytest.mark.integration


def trestle_etl(*args: str, env: dict[str, str] | None = None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "trestle_tasks", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRESTLE_", "DATABASE_"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def served():
    with simulator_process("--records", "1500", "--seed", "4") as endpoints:
        yield endpoints


def test_simulator_from_the_cli_walks_every_record_exactly_once(served):
    settings = load_settings(
        {"TRESTLE_CLIENT_ID": "trestle-simulator", "TRESTLE_CLIENT_SECRET": "simulator-secret",
         "TRESTLE_TOKEN_URL": served.token_url, "TRESTLE_BASE_URL": served.odata_root},
        env_file=None,
    )
    client = LocalRuntime(settings).trestle_client()
    keys = Counter(
        record["ListingKey"]
        for page in walk_keyset(client, KeysetRange("Property", "ListingKey"))
        for record in page.records
    )
    assert len(keys) == 1500
    assert set(keys.values()) == {1}


def test_check_config_passes_against_the_simulator(served, tmp_path):
    env = clean_env(
        TRESTLE_CLIENT_ID="trestle-simulator", TRESTLE_CLIENT_SECRET="simulator-secret",
        TRESTLE_TOKEN_URL=served.token_url, TRESTLE_BASE_URL=served.odata_root,
        DATABASE_URL="mysql+pymysql://root:@127.0.0.1:3306/test",
    )
    result = trestle_etl("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "simulator-secret" not in result.stdout + result.stderr
    for name in ("token endpoint", "OData root", "database", "redis"):
        assert any(line.strip().startswith("ok") and name in line
                   for line in result.stdout.splitlines()), name


def test_wrong_secret_fails_check_config_with_a_clear_line(served, tmp_path):
    env = clean_env(
        TRESTLE_CLIENT_ID="trestle-simulator", TRESTLE_CLIENT_SECRET="wrong-secret-123",
        TRESTLE_TOKEN_URL=served.token_url, TRESTLE_BASE_URL=served.odata_root,
    )
    result = trestle_etl("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "rejected the client credentials" in result.stdout
    assert "wrong-secret-123" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == ["trestle-etl: error: 2 check(s) failed"]


def test_bad_settings_exit_2_naming_every_problem(tmp_path):
    (tmp_path / ".env").write_text("TRESTLE_PAGE_SIZE=5000\nnot a line\n")
    env = clean_env(REDIS_URL="http://wrong")
    result = trestle_etl("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trestle-etl: error:")
    for fragment in ("TRESTLE_PAGE_SIZE", "REDIS_URL", "line 2"):
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_simulator_on_a_busy_port_is_one_clear_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = trestle_etl("simulator", "--port", str(port), "--records", "5")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trestle-etl: error:"), result.stderr
    assert "already in use" in lines[0] and str(port) in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # no URLs announced for a server that never started


def test_demo_runs_with_no_configuration(tmp_path):
    env = clean_env()
    env.pop("REDIS_URL", None)
    database = tmp_path / "demo.sqlite3"
    result = trestle_etl("demo", "--records", "300", "--database", str(database), env=env,
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Incremental sync after changing 25 listings: fetched 25 records" in result.stdout
    for resource in ("Property", "Member", "Office", "OpenHouse", "Media"):
        assert any(line.startswith(resource) and "succeeded" in line
                   for line in result.stdout.splitlines()), resource
    assert database.exists()
    assert "Sample query" in result.stdout
