"""Misconfiguration a new user makes (issue 22, 15-20): each is one clear line, exit 2 for
a setting to fix, and nothing changed, instead of being ignored or failing deep inside."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from .cli_process import assert_one_line_error, clean_env, trestle_etl
from .sync_fixtures import ADMIN_URLS

pytestmark = pytest.mark.integration


def pointing_at(sim, database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(**{"TRESTLE_CLIENT_ID": sim.client_id,
                        "TRESTLE_CLIENT_SECRET": sim.client_secret,
                        "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                        "DATABASE_URL": database_url, **extra})


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
