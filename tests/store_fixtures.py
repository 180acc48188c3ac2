"""Database fixtures for the store's tests: real MariaDB, PostgreSQL and SQLite.

One engine per server for the whole session; each test (or test module) gets its own
namespace — a MariaDB database or a PostgreSQL schema with a unique name, or a fresh
SQLite file — which is dropped afterwards, so tests never see each other's rows and
never depend on their order.

Use `store_target` (function scope) or `module_store_target` (module scope, for Hypothesis
tests that share one migrated namespace across examples and keep examples apart with
unique keys). Both are parametrized over the three dialects.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.store.engine import create_store_engine
from trestle_tasks.store.export import ShapeNames
from trestle_tasks.store.jsontext import decode_json
from trestle_tasks.store.naming import RECORD_COLUMN, SHAPE_COLUMN
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.shapes import restore

MARIADB_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")

DIALECTS = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.integration),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
)

_server_engines: dict[str, Engine] = {}


@dataclass
class StoreTarget:
    """A database and a namespace in it that belongs to one test (or one module)."""

    dialect: str
    engine: Engine
    schema: str | None

    def table(self, name: str) -> str:
        """`name` qualified with the namespace, quoted for raw SQL."""
        preparer = self.engine.dialect.identifier_preparer
        quoted = preparer.quote(name)
        return f"{preparer.quote_schema(self.schema)}.{quoted}" if self.schema else quoted


def server_engine(dialect: str) -> Engine:
    """The session's engine for a server dialect, created on first use."""
    if dialect not in _server_engines:
        url = MARIADB_URL if dialect == "mariadb" else POSTGRES_URL
        _server_engines[dialect] = create_store_engine(url, pool_size=4, max_overflow=8)
    return _server_engines[dialect]


def open_target(dialect: str, directory: Path) -> StoreTarget:
    name = f"t_{uuid.uuid4().hex[:12]}"
    if dialect == "sqlite":
        return StoreTarget("sqlite", create_store_engine(f"sqlite:///{directory / name}.db"),
                           None)
    engine = server_engine(dialect)
    with engine.begin() as conn:
        if dialect == "mariadb":
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        else:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    return StoreTarget(dialect, engine, name)


def close_target(target: StoreTarget) -> None:
    if target.dialect == "sqlite":
        target.engine.dispose()
        return
    with target.engine.begin() as conn:
        if target.dialect == "mariadb":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{target.schema}`")
        else:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE')


@pytest.fixture(params=DIALECTS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    target = open_target(request.param, tmp_path)
    try:
        yield target
    finally:
        close_target(target)


@pytest.fixture(scope="module", params=DIALECTS)
def module_store_target(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreTarget]:
    target = open_target(request.param, tmp_path_factory.mktemp("store"))
    try:
        yield target
    finally:
        close_target(target)


def count_rows(target: StoreTarget, table: str, where: str = "") -> int:
    with target.engine.connect() as conn:
        return int(conn.execute(sa.text(
            f"SELECT COUNT(*) FROM {target.table(table)} {where}")).scalar_one())


def stored_texts(target: StoreTarget, resource: str, keys: Iterable[Any]) -> dict[Any, str]:
    """The records stored under these keys as the JSON text export writes (nulls restored
    from their shapes): key -> text."""
    layout = layout_of(target.engine, resource, target.schema)
    table = layout.table
    key = table.c[layout.key_column]
    shape = table.c[SHAPE_COLUMN] if layout.shapes else sa.null()
    shapes = ShapeNames(target.engine, target.schema)
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(key, table.c[RECORD_COLUMN], shape)
                            .where(key.in_(list(keys)))).all()
    return {k: text if name is None else restore(text, shapes.names(name))
            for k, text, name in rows}


def stored_records(target: StoreTarget, resource: str, keys: Iterable[Any]
                   ) -> dict[Any, Any]:
    """`stored_texts`, decoded."""
    return {k: decode_json(text) for k, text in stored_texts(target, resource, keys).items()}


def statement_text(statement: str | bytes) -> str:
    """A statement as a before_cursor_execute hook sees it, as text: the MySQL loader sends
    its upserts as bytes with the values written in (store/literal_sql.py)."""
    return statement.decode("utf-8", "replace") if isinstance(statement, bytes) else statement
