"""Misconfiguration a new user makes (issue 22, 15-20): each is one clear line, exit 2 for
a setting to fix, and nothing changed, instead of being ignored or failing deep inside."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from .cli_process import assert_one_line_error, clean_env, pointing_at, trestle_etl
from .sync_fixtures import ADMIN_URLS

pytestmark = pytest.mark.integration


def database_names(dialect: str) -> set[str]:
    engine = sa.create_engine(ADMIN_URLS[dialect])
    try:
        query = ("SHOW DATABASES" if dialect == "mariadb"
                 else "SELECT datname FROM pg_database")
        with engine.connect() as connection:
            return {row[0] for row in connection.exec_driver_sql(query)}
    finally:
        engine.dispose()


@pytest.mark.parametrize(("url", "example"), [
    ("mysql+pymysql://root@127.0.0.1:3306", "mysql+pymysql://user:pw@host:3306/trestle"),
    ("mysql+pymysql://root@127.0.0.1:3306/", "mysql+pymysql://user:pw@host:3306/trestle"),
    ("postgresql+psycopg://postgres@127.0.0.1:5432",
     "postgresql+psycopg://user:pw@host:5432/trestle"),
], ids=["mariadb", "mariadb-slash", "postgresql"])
@pytest.mark.parametrize("command", [("check-config",), ("migrate",)])
def test_a_database_url_without_a_database_name(simulator, tmp_path, url, example, command):
    # Before: check-config said ok, migrate died with "unexpected AssertionError" (MySQL)
    # or filled the `postgres` database's public schema (PostgreSQL).
    result = trestle_etl(*command, env=pointing_at(simulator, url), cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "DATABASE_URL", "names no database", example)


@pytest.mark.parametrize(("dialect", "url", "create"), [
    ("mariadb", "mysql+pymysql://root@127.0.0.1:3306/{name}",
     "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
    ("postgresql", "postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
     'CREATE DATABASE "{name}"'),
], ids=["mariadb", "postgresql"])
@pytest.mark.parametrize("command", [("migrate",), ("sync", "--local"), ("status",)])
def test_a_missing_database_says_how_to_create_it(simulator, tmp_path, dialect, url, create,
                                                   command):
    name = f"missing_{uuid.uuid4().hex[:10]}"
    result = trestle_etl(*command, env=pointing_at(simulator, url.format(name=name)),
                         cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, f"database {name!r} does not exist",
                          create.format(name=name), "trestle-etl migrate")
    assert name not in database_names(dialect)


@pytest.fixture
def migrated_sqlite(simulator, tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    result = trestle_etl("migrate", "--resource", "Office", env=pointing_at(simulator, url),
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return url


def test_sync_with_rabbitmq_down_names_the_broker(simulator, migrated_sqlite, tmp_path):
    # Before: "unexpected OperationalError: [Errno 111] Connection refused".
    env = pointing_at(simulator, migrated_sqlite,
                      CELERY_BROKER_URL="amqp://guest:Broker-Pass-7731@127.0.0.1:1//")
    result = trestle_etl("sync", "--wait", "--resource", "Office", env=env, cwd=tmp_path,
                         timeout=60)
    line = assert_one_line_error(result, "RabbitMQ at 127.0.0.1:1 did not answer",
                                 "CELERY_BROKER_URL")
    assert "unexpected" not in line and "Broker-Pass-7731" not in line
    assert result.returncode == 1


def test_reconcile_with_redis_down_names_redis(simulator, migrated_sqlite, tmp_path):
    # Before: "unexpected ConnectionError: Error 111 connecting to 127.0.0.1:1".
    env = pointing_at(simulator, migrated_sqlite, REDIS_URL="redis://:Redis-Pass-5519@127.0.0.1:1/0")
    simulator.reset_stats()
    result = trestle_etl("reconcile", "--resource", "Office", env=env, cwd=tmp_path, timeout=60)
    line = assert_one_line_error(result, "needs Redis", "127.0.0.1:1", "did not answer")
    assert "unexpected" not in line and "Redis-Pass-5519" not in line
    assert int(simulator.stats()["requests"].get(simulator.client_id, {}).get("total", 0)) == 0


@pytest.mark.parametrize(("broker", "ok"), [
    ("amqp://guest:Broker-Pass-7731@127.0.0.1:1//", False),
    ("redis://:Broker-Pass-7731@127.0.0.1:1/0", False),
    ("amqp://guest:guest@127.0.0.1:5672//", True),
], ids=["rabbitmq-down", "redis-broker-down", "rabbitmq-up"])
def test_check_config_checks_the_broker(simulator, tmp_path, broker, ok):
    # Before: check-config checked REDIS_URL only and said every check was ok.
    if ok:
        import socket

        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", 5672)) != 0:
                pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    env = pointing_at(simulator, f"sqlite:///{tmp_path / 'target.sqlite3'}",
                      CELERY_BROKER_URL=broker)
    result = trestle_etl("check-config", env=env, cwd=tmp_path, timeout=60)
    [line] = [line for line in result.stdout.splitlines() if "celery broker" in line]
    assert "Broker-Pass-7731" not in result.stdout + result.stderr
    if ok:
        assert result.returncode == 0, result.stdout
        assert line.strip().startswith("ok")
    else:
        assert result.returncode == 1
        assert line.strip().startswith("FAIL")
        assert "127.0.0.1:1" in line and "did not answer" in line


def scrape_metrics(env: dict[str, str], cwd) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                      float]:
    """One scrape of `trestle-etl metrics --port 0`, run as a command."""
    import subprocess
    import sys
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    process = subprocess.Popen([sys.executable, "-m", "trestle_tasks", "metrics", "--port",
                                "0"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert "/metrics" in line, line
        endpoint = line.split("at ", 1)[1].split(";", 1)[0]
        with urllib.request.urlopen(endpoint, timeout=30) as response:
            text = response.read().decode()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted({"feed": "default", **labels}.items()))))


def test_reconciles_are_not_counted_or_shown_as_sync_runs(simulator, migrated_sqlite, tmp_path):
    # Before: trestle_runs_total counted the reconciles (a failed dry run as a failed run),
    # the last run's duration was the reconcile's, and `status` listed a dry run that
    # failed as a plain `failed` run.
    env = pointing_at(simulator, migrated_sqlite)
    synced = trestle_etl("sync", "--local", "--resource", "Office", env=env, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    dry = trestle_etl("reconcile", "--local", "--dry-run", "--resource", "Office", env=env,
                      cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    # A dry run whose census cannot be taken (the OData root does not answer) fails.
    broken = {**env, "TRESTLE_BASE_URL": "http://127.0.0.1:1/odata",
              "TRESTLE_RETRY_BUDGET": "0"}
    failed = trestle_etl("reconcile", "--local", "--dry-run", "--resource", "Office",
                         env=broken, cwd=tmp_path, timeout=120)
    assert failed.returncode == 1, failed.stderr

    report = json.loads(trestle_etl("status", "--json", env=env, cwd=tmp_path).stdout)
    kinds = [(run["kind"], run["status"]) for run in report["runs"]]
    assert kinds == [("dry run", "failed"), ("dry run", "succeeded"), ("sync", "succeeded")]
    text = trestle_etl("status", env=env, cwd=tmp_path).stdout
    recent = text.split("Recent runs:")[1].split("\n\n")[0]
    assert "dry run failed" in recent and "dry run succeeded" in recent
    assert recent.count(" succeeded ") == 2  # the sync's, and the successful dry run's

    samples = scrape_metrics(env, tmp_path)
    assert sample(samples, "trestle_runs_total", resource="Office", status="succeeded") == 1
    assert sample(samples, "trestle_runs_total", resource="Office", status="failed") is None
    assert sample(samples, "trestle_reconcile_runs_total", resource="Office",
                  status="succeeded") == 1
    assert sample(samples, "trestle_reconcile_runs_total", resource="Office",
                  status="failed") == 1
    sync_run = report["runs"][-1]
    took = (datetime.fromisoformat(sync_run["finished_at"])
            - datetime.fromisoformat(sync_run["started_at"])).total_seconds()
    assert sample(samples, "trestle_last_run_duration_seconds", resource="Office") == \
        pytest.approx(took, abs=0.01)


def test_status_with_nothing_configured_creates_no_database(tmp_path):
    # Before: `status` in an empty folder created an empty trestle.sqlite3 there.
    result = trestle_etl("status", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no database yet" in result.stdout and "trestle-etl migrate" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_status_names_each_feeds_schema(tmp_path):
    # Before: every feed's report said "Database: <the URL>", as if they shared one place.
    env = clean_env(TRESTLE_FEEDS="north,south",
                    DATABASE_URL="mysql+pymysql://root@127.0.0.1:3306/test")
    result = trestle_etl("status", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    north, south = result.stdout.split("== feed south ==")
    assert "tables in schema feed_north" in north.splitlines()[1]
    assert "tables in schema feed_south" in south.splitlines()[1]
    reports = json.loads(trestle_etl("status", "--json", env=env, cwd=tmp_path).stdout)
    assert {name: r["schema"] for name, r in reports["feeds"].items()} == \
        {"north": "feed_north", "south": "feed_south"}


def sqlite_file_with(path, statement: str) -> bytes:
    import sqlite3

    connection = sqlite3.connect(path)
    connection.execute(statement)
    connection.commit()
    connection.close()
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["text", "foreign-sqlite", "synced-copy"])
def test_demo_refuses_a_file_it_did_not_make(tmp_path, kind):
    # Before: `demo --database FILE` deleted whatever FILE was and filled it with the demo.
    target = tmp_path / "precious.db"
    if kind == "text":
        target.write_text("my notes, not a database\n")
        before = target.read_bytes()
    elif kind == "foreign-sqlite":
        before = sqlite_file_with(target, "CREATE TABLE invoices (id INTEGER, total REAL)")
    else:  # a real copy of the feed: our own tables, but not the demo's file
        before = sqlite_file_with(target, "CREATE TABLE property (listing_key TEXT)")
    result = trestle_etl("demo", "--records", "10", "--database", str(target),
                         env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, str(target), "name a new file")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.db"]


def test_demo_replaces_its_own_file(tmp_path):
    target = tmp_path / "demo.sqlite3"
    for _ in range(2):  # the second run replaces what the first made
        result = trestle_etl("demo", "--records", "10", "--database", str(target),
                             env=clean_env(), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    engine = sa.create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM property").scalar() == 10
    finally:
        engine.dispose()


def property_columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return ({c["name"] for c in inspector.get_columns("property")}
                | {i["name"] for i in inspector.get_indexes("property")})
    finally:
        engine.dispose()


def sync_log_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT COUNT(*) FROM etl_sync_log").scalar())
    finally:
        engine.dispose()


@pytest.fixture
def living_area_indexed(simulator, tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    env = pointing_at(simulator, url, STORE_INDEXED_FIELDS="Property.LivingArea")
    result = trestle_etl("migrate", "--resource", "Property", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "LivingArea" in property_columns(url)
    return url


@pytest.mark.parametrize(("indexed", "says"), [
    ("Propety.LivingArea", "did you mean Property.LivingArea?"),
    ("Teams.X", "Teams.X"),
    ("Property.LivingAreaa", "did you mean Property.LivingArea?"),
], ids=["misspelt-resource", "resource-not-synced", "misspelt-field"])
@pytest.mark.parametrize("command", [("migrate",), ("sync", "--local")])
def test_an_unknown_indexed_field_is_an_error_that_changes_nothing(
        simulator, living_area_indexed, tmp_path, indexed, says, command):
    # Before: exit 0, the name skipped; with `Propety.` the LivingArea column and its
    # index, which queries used, were dropped.
    url = living_area_indexed
    before, runs = property_columns(url), sync_log_rows(url)
    env = pointing_at(simulator, url, STORE_INDEXED_FIELDS=indexed)
    result = trestle_etl(*command, "--resource", "Property", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "STORE_INDEXED_FIELDS", says)
    assert property_columns(url) == before
    assert sync_log_rows(url) == runs


def test_a_misspelt_variable_is_warned_about(simulator, tmp_path):
    # Before: TRESTLE_PAGESIZE (and any other misspelt name) was ignored without a word.
    (tmp_path / ".env").write_text("SYNC_WINDOWSIZE=500\n")
    env = pointing_at(simulator, f"sqlite:///{tmp_path / 'target.sqlite3'}",
                      TRESTLE_PAGESIZE="10", TRESTLE_HTTP_TIMEOUT="30",
                      TRESTLE_FEEDS="north", FEED_NORTH_TRESTLE_PAGE_SIZE="20",
                      FEED_NORTH_DATABASE_URL=f"sqlite:///{tmp_path / 'north.sqlite3'}",
                      STORE_SIM_RECORDS="10")
    result = trestle_etl("migrate", "--resource", "Office", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "trestle-etl: warning: SYNC_WINDOWSIZE is not a setting (did you mean "
        "SYNC_WINDOW_SIZE?); it is ignored",
        "trestle-etl: warning: TRESTLE_PAGESIZE is not a setting (did you mean "
        "TRESTLE_PAGE_SIZE?); it is ignored",
    ]


def test_sync_wait_shows_every_outcome_when_one_resource_is_undeclared(
        simulator, celery_redis, tmp_path):
    # Before: `sync --wait` printed only "planning the Nope run failed: …" although
    # Office and Member synced; now the table shows each outcome and it exits 2, as an
    # unknown --resource does.
    import os
    import signal
    import subprocess
    import sys

    from tests.redis_space import redis_url

    url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    env = pointing_at(simulator, url, REDIS_URL=redis_url("celery"),
                      TRESTLE_RESOURCES="Office,Nope,Member")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker", "-c", "2", "-n",
         f"misconf-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        result = trestle_etl("sync", "--wait", "--timeout", "120", env=env, cwd=tmp_path,
                             timeout=240)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    assert result.returncode == 2, result.stderr + result.stdout
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]
            if line and not line.startswith(" ")}
    assert rows == {"Office": "succeeded", "Nope": "failed", "Member": "succeeded"}
    assert "$metadata does not declare Nope" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("trestle-etl: error: $metadata does not declare Nope"), last


@pytest.mark.parametrize("command", [("sync", "--local"), ("reconcile", "--local"),
                                     ("migrate",)], ids=["sync", "reconcile", "migrate"])
def test_an_undeclared_resource_in_trestle_resources_exits_2(simulator, migrated_sqlite,
                                                             tmp_path, command):
    # Before: `sync --local` exited 1 (a MetadataError) and `reconcile` 1 with "never
    # synced: run migrate and a sync first", which cannot help.
    env = pointing_at(simulator, migrated_sqlite, TRESTLE_RESOURCES="Office,Nope")
    result = trestle_etl(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("trestle-etl: error: ")
    assert "Nope" in result.stderr and "does not declare" in result.stderr


def test_check_config_says_how_to_create_a_missing_database(simulator, tmp_path):
    # Before: "FAIL database OperationalError: (1049, "Unknown database …")".
    name = f"missing_{uuid.uuid4().hex[:10]}"
    env = pointing_at(simulator, f"mysql+pymysql://root@127.0.0.1:3306/{name}")
    result = trestle_etl("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if " database " in line]
    assert line.strip().startswith("FAIL")
    assert f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4" in line
    assert name not in database_names("mariadb")
