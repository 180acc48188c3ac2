"""What an operator meets in the first hour, driven as they would: `trestle-etl` in a
subprocess (see issue 13, "Operator experience"). Each test fails on the old behaviour."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from .cli_process import REPO_ROOT, assert_one_line_error, clean_env, table_names, trestle_etl

pytestmark = pytest.mark.integration


def pointing_at(sim, database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(**{"TRESTLE_CLIENT_ID": sim.client_id,
                        "TRESTLE_CLIENT_SECRET": sim.client_secret,
                        "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                        "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:1/0",
                        **extra})


def sync_log_rows(url: str) -> int:
    if "etl_sync_log" not in table_names(url):
        return 0
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM etl_sync_log")).scalar())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def synced(simulator, tmp_path_factory):
    """A SQLite store holding the simulator's Property and Office records."""
    folder = tmp_path_factory.mktemp("synced")
    url = f"sqlite:///{folder / 'store.sqlite3'}"
    env = pointing_at(simulator, url, TRESTLE_RESOURCES="Property,Office")
    result = trestle_etl("sync", "--local", env=env, cwd=folder)
    assert result.returncode == 0, result.stderr
    return url, folder


def test_export_into_a_closed_pipe_ends_quietly_with_status_0(simulator, synced):
    url, folder = synced
    env = pointing_at(simulator, url, TRESTLE_RESOURCES="Property,Office")
    # Far more than a pipe buffer, so the writer is still writing when `head` leaves.
    script = (f"{sys.executable} -m trestle_tasks export --resource Property 2>stderr.txt "
              "| head -n 1 >/dev/null; echo ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", script], env=env, cwd=folder, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "0"
    assert (folder / "stderr.txt").read_text() == ""


def test_a_typo_in_the_database_driver_is_a_bad_setting(simulator, tmp_path):
    env = pointing_at(simulator, "mysql+pymsql://root:Typo-Pw-4410@127.0.0.1:3306/test")
    for command in (("migrate",), ("sync", "--local"), ("check-config",)):
        result = trestle_etl(*command, env=env, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        line = assert_one_line_error(result, "DATABASE_URL", "'pymsql'", "mysql+pymysql://")
        assert "Typo-Pw-4410" not in line
        assert "Can't load plugin" not in line


@pytest.fixture
def silent_endpoint():
    """A port that accepts connections and never answers (a firewall, a hung proxy)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_check_config_gives_up_on_a_silent_token_endpoint_in_seconds(simulator, tmp_path,
                                                                     silent_endpoint):
    env = pointing_at(simulator, f"sqlite:///{tmp_path / 'x.sqlite3'}",
                      TRESTLE_TOKEN_URL=f"{silent_endpoint}/token")
    started = time.monotonic()
    result = trestle_etl("check-config", env=env, cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 30, f"took {elapsed:.0f} s"  # was TRESTLE_RETRY_BUDGET: 5 minutes
    lines = result.stdout.splitlines()
    assert "Checks (each gives up after 10 s):" in lines
    token = next(line for line in lines if "token endpoint" in line and "FAIL" in line)
    assert "timed out" in token.lower()
    assert any("OData root" in line and "not tried" in line for line in lines)


def test_check_config_names_a_resource_the_feed_does_not_declare(simulator, tmp_path):
    env = pointing_at(simulator, f"sqlite:///{tmp_path / 'x.sqlite3'}",
                      TRESTLE_RESOURCES="Property,Propety")
    result = trestle_etl("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if " resources " in line)
    assert "FAIL" in line and "Propety" in line and "TRESTLE_RESOURCES" in line
    good = trestle_etl("check-config", env=pointing_at(
        simulator, f"sqlite:///{tmp_path / 'x.sqlite3'}", TRESTLE_RESOURCES="Property,Office"),
        cwd=tmp_path)
    assert any(line.strip().startswith("ok") and " resources " in line
               for line in good.stdout.splitlines()), good.stdout


def test_sync_stops_on_an_undeclared_resource_before_syncing_any(simulator, tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    env = pointing_at(simulator, url, TRESTLE_RESOURCES="Office,Propety")
    result = trestle_etl("sync", "--local", env=env, cwd=tmp_path)
    line = assert_one_line_error(result, "Propety", "TRESTLE_RESOURCES")
    assert "trestle-etl migrate" not in line  # migrate cannot create what the feed lacks
    assert sync_log_rows(url) == 0  # Office, listed first, was not synced either


def test_migrate_reports_in_words(simulator, tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    env = pointing_at(simulator, url, TRESTLE_RESOURCES="Property,Office")
    first = trestle_etl("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "MigrationReport(" not in first.stdout
    assert "created 2 tables: property, office" in first.stdout
    again = trestle_etl("migrate", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing to change" in again.stdout
    unknown = trestle_etl("migrate", env=pointing_at(simulator, url,
                                                     TRESTLE_RESOURCES="Office,Propety"),
                          cwd=tmp_path)
    assert unknown.returncode == 2
    assert_one_line_error(unknown, "TRESTLE_RESOURCES", "Propety")


def test_sync_local_with_a_wrong_secret_is_one_line_and_writes_no_row(simulator, synced):
    url, folder = synced
    before = sync_log_rows(url)
    env = pointing_at(simulator, url, TRESTLE_RESOURCES="Property,Office",
                      TRESTLE_CLIENT_SECRET="Wrong-Secret-8812")
    result = trestle_etl("sync", "--local", env=env, cwd=folder)
    line = assert_one_line_error(result, "rejected the client credentials",
                                 "TRESTLE_CLIENT_SECRET")
    assert result.returncode == 1
    assert result.stdout == ""  # no table of the same error per resource
    assert "Wrong-Secret-8812" not in line
    assert sync_log_rows(url) == before


def test_the_package_runs_from_the_repository(tmp_path):
    """The CLI tests above run `python -m trestle_tasks` from REPO_ROOT's package."""
    assert (REPO_ROOT / "trestle_tasks" / "__main__.py").exists()
