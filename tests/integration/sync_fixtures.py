"""A fresh database per test for end-to-end sync tests, as a DATABASE_URL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from trestle_tasks.core.settings import Settings, load_settings

SERVER_URLS = {
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{name}",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
}
ADMIN_URLS = {
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}
DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb"),
    pytest.param("postgresql", id="postgresql"),
]


def create_database(dialect: str, tmp_path: Path) -> tuple[str, str]:
    name = f"sync_{uuid.uuid4().hex[:10]}"
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / name}.sqlite3", name
    engine = sa.create_engine(ADMIN_URLS[dialect], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        quoted = f"`{name}`" if dialect == "mariadb" else f'"{name}"'
        conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    engine.dispose()
    return SERVER_URLS[dialect].format(name=name), name


def drop_database(dialect: str, name: str) -> None:
    if dialect == "sqlite":
        return
    engine = sa.create_engine(ADMIN_URLS[dialect], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if dialect == "mariadb":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        else:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@contextmanager
def fresh_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    """A new database's URL; afterwards this process's stores of it are disposed and the
    database dropped."""
    from trestle_tasks.worker import factory

    url, name = create_database(dialect, tmp_path)
    try:
        yield url
    finally:
        for key, value in factory._per_process.copy().items():
            if key[1] == f"store:{url}":
                value.dispose()
                factory._per_process.pop(key, None)
        drop_database(dialect, name)


def settings_for(sim, database_url: str, **extra: str) -> Settings:
    environ = {
        "TRESTLE_CLIENT_ID": sim.client_id,
        "TRESTLE_CLIENT_SECRET": sim.client_secret,
        "TRESTLE_TOKEN_URL": sim.token_url,
        "TRESTLE_BASE_URL": sim.odata_root,
        "DATABASE_URL": database_url,
        **extra,
    }
    return load_settings(environ, env_file=None)


def canonical(record: dict) -> str:
    """Compare records by value: exact decimals, key order ignored."""
    return json.dumps(json.loads(json.dumps(record, default=str), parse_float=Decimal),
                      sort_keys=True, default=str)
