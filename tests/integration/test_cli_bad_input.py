"""Bad input: one clear line on stderr, a non-zero exit, and nothing changed.

"Nothing changed" is checked where it can be seen: the target database gained no table,
and the simulator served no data request (the command stopped before asking Trestle).
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from .cli_process import assert_one_line_error, clean_env, pointing_at, table_names, trestle_etl
from .sync_fixtures import create_database, drop_database

pytestmark = pytest.mark.integration


def served_requests(sim) -> int:
    return int(sim.stats()["requests"].get(sim.client_id, {}).get("total", 0))


@pytest.fixture
def mariadb_url(tmp_path):
    try:
        url, name = create_database("mariadb", tmp_path)
    except sa.exc.OperationalError as error:
        pytest.skip(f"MariaDB is not reachable: {error.orig}")
    yield url
    drop_database("mariadb", name)


@pytest.mark.parametrize("command", [
    ("sync", "--local", "--resource", "Nope"),
    ("migrate", "--resource", "Property", "--resource", "Nope"),
    ("reconcile", "--local", "--resource", "Nope"),
    ("export", "--resource", "Nope"),
], ids=["sync", "migrate", "reconcile", "export"])
def test_an_unknown_resource(simulator, tmp_path, command):
    url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    simulator.reset_stats()
    result = trestle_etl(*command, env=pointing_at(simulator, url), cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "Nope", "TRESTLE_RESOURCES", "--help")
    assert table_names(url) == set()
    assert served_requests(simulator) == 0


@pytest.mark.parametrize(("url", "says"), [
    ("mysql+pymysql://root@127.0.0.1:1/trestle", "Can't connect to MySQL server"),
    ("postgresql+psycopg://postgres@127.0.0.1:1/trestle", "connection failed"),
    ("sqlite:////nonexistent-folder/trestle.sqlite3", "unable to open database file"),
], ids=["mariadb", "postgresql", "sqlite"])
@pytest.mark.parametrize("command", [("sync", "--local"), ("migrate",), ("status",)],
                         ids=["sync", "migrate", "status"])
def test_an_unreachable_database(simulator, tmp_path, url, says, command):
    simulator.reset_stats()
    started = time.monotonic()
    result = trestle_etl(*command, env=pointing_at(simulator, url), cwd=tmp_path)
    assert_one_line_error(result, "database error", says)
    assert result.returncode == 1
    assert served_requests(simulator) == 0
    assert time.monotonic() - started < 30  # at once, not after the store's retry budget


def test_a_wrong_database_password(simulator, mariadb_url, tmp_path):
    # PostgreSQL here trusts loopback (any password is accepted), so MariaDB shows it.
    wrong = mariadb_url.replace("root@", "root:Wrong-Pass-6152@")
    simulator.reset_stats()
    for command in (("migrate",), ("sync", "--local"), ("export", "--resource", "Office")):
        result = trestle_etl(*command, env=pointing_at(simulator, wrong), cwd=tmp_path)
        line = assert_one_line_error(result, "Access denied", "MySQL error 1045")
        assert "Wrong-Pass-6152" not in line + result.stdout
    assert table_names(mariadb_url) == set()
    assert served_requests(simulator) == 0


def test_a_wrong_client_secret(simulator, mariadb_url, tmp_path):
    env = pointing_at(simulator, mariadb_url, TRESTLE_CLIENT_SECRET="Wrong-Secret-2291")
    for command in (("migrate",), ("sync", "--local"), ("sync", "--local", "--full")):
        result = trestle_etl(*command, env=env, cwd=tmp_path)
        line = assert_one_line_error(result, "rejected the client credentials",
                                     "TRESTLE_CLIENT_SECRET")
        assert "Wrong-Secret-2291" not in line + result.stdout
    assert table_names(mariadb_url) == set()


def test_a_malformed_env_file_changes_nothing(simulator, mariadb_url, tmp_path):
    (tmp_path / ".env").write_text(
        f"TRESTLE_CLIENT_ID={simulator.client_id}\n"
        "TRESTLE_CLIENT_SECRET='unterminated\n"
        f"DATABASE_URL={mariadb_url}\n")
    env = clean_env(TRESTLE_TOKEN_URL=simulator.token_url, TRESTLE_BASE_URL=simulator.odata_root)
    simulator.reset_stats()
    for command in (("migrate",), ("sync", "--local")):
        result = trestle_etl(*command, env=env, cwd=tmp_path)
        assert result.returncode == 2
        assert_one_line_error(result, "invalid settings", ".env: line 2 could not be parsed")
    assert table_names(mariadb_url) == set()
    assert served_requests(simulator) == 0


def test_sync_through_celery_without_redis(simulator, tmp_path):
    url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    env = pointing_at(simulator, url, REDIS_URL="redis://:Redis-Pw-7731@127.0.0.1:1/10")
    started = time.monotonic()
    result = trestle_etl("sync", "--wait", env=env, cwd=tmp_path)
    line = assert_one_line_error(result, "needs Redis", "127.0.0.1:1")
    assert "Redis-Pw-7731" not in line
    assert time.monotonic() - started < 30  # no twenty seconds of Celery reconnects
    assert table_names(url) == set()


def test_debug_adds_the_traceback(tmp_path):
    env = clean_env(TRESTLE_CLIENT_ID="x", TRESTLE_CLIENT_SECRET="y",
                    DATABASE_URL="mysql+pymysql://root@127.0.0.1:1/trestle")
    result = trestle_etl("--debug", "migrate", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("trestle-etl: error: database")


def test_every_command_has_help(tmp_path):
    from trestle_tasks.cli.commands import main

    assert len(main.commands) >= 8
    for name in sorted(main.commands):
        result = trestle_etl(name, "--help", env=clean_env(), cwd=tmp_path, timeout=60)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.startswith(f"Usage: trestle-etl {name}"), name
        assert "--help" in result.stdout


def test_demo_celery_without_redis_starts_nothing(tmp_path):
    database = tmp_path / "demo.sqlite3"
    result = trestle_etl("demo", "--celery", "--redis-url", "redis://127.0.0.1:1/10",
                         "--database", str(database), env=clean_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, "`demo --celery` needs Redis", "redis://127.0.0.1:1/10")
    assert not database.exists()


@pytest.mark.parametrize("args", [("--bogus",), ("--bogus", "status"), ("sync", "--bogus")],
                         ids=["top-level", "top-level-before-command", "command"])
def test_an_unknown_option_is_one_line_and_exit_2(tmp_path, args):
    result = trestle_etl(*args, env=clean_env(), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert_one_line_error(result, "No such option '--bogus'", "--help")


def test_no_arguments_shows_the_help(tmp_path):
    result = trestle_etl(env=clean_env(), cwd=tmp_path, timeout=60)
    assert "Usage: trestle-etl" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_reconcile_before_any_sync_says_what_to_run(simulator, tmp_path):
    env = clean_env(TRESTLE_CLIENT_ID=simulator.client_id,
                    TRESTLE_CLIENT_SECRET=simulator.client_secret,
                    TRESTLE_TOKEN_URL=simulator.token_url, TRESTLE_BASE_URL=simulator.odata_root,
                    DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    before = served_requests(simulator)
    result = trestle_etl("reconcile", "--local", "--resource", "Office", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, "Office never synced", "trestle-etl migrate")
    assert served_requests(simulator) == before  # not even a census was asked for
