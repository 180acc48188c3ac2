"""A pooled SQLAlchemy Engine for the target database, set up the same way everywhere.

- MySQL/MariaDB: utf8mb4 end to end, session time zone UTC, strict SQL mode (a value that
  does not fit is an error, never a silent truncation) with NO_BACKSLASH_ESCAPES (see
  MYSQL_SQL_MODE), READ COMMITTED (upserts then take
  no gap locks, the usual source of deadlocks between concurrent INSERT … ON DUPLICATE KEY
  UPDATE), and `local_infile` only when asked for (the package never
  asks: only the LOAD DATA rows of bench/store_load.py do).
  Should a server refuse that mode, PyMySQL escapes with `str.translate`, about 15 times
  slower than chained `str.replace` on 200 KB documents; connections get the faster,
  equivalent escaper (see `fast_escape_string`).
- PostgreSQL: session time zone UTC.
- SQLite: WAL, a busy timeout, and `BEGIN IMMEDIATE` for write transactions, so
  concurrent writers queue for the lock instead of failing half-way through a batch.
Connections are checked before use (`pool_pre_ping`) and recycled, since servers drop idle
connections and Celery workers hold engines for days. Creating an engine connects to nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

# NO_BACKSLASH_ESCAPES: string literals are verbatim but for '' (PyMySQL sees the mode in
# the server status and escapes accordingly). Escaping a 200 KB JSON document is then one
# str.replace instead of seven, the largest CPU saving on wide rows.
MYSQL_SQL_MODE = ("STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
                  "NO_BACKSLASH_ESCAPES")
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_IMMEDIATE = "sqlite_begin_immediate"  # execution option: BEGIN IMMEDIATE on SQLite

# The characters MySQL's escape_string escapes, in the order that keeps it reversible:
# backslash first, or the escapes added after it would be doubled.
MYSQL_ESCAPES = (("\\", "\\\\"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"),
                 ("\032", "\\Z"), ("'", "\\'"), ('"', '\\"'))
NO_BACKSLASH_ESCAPES = 512  # SERVER_STATUS_NO_BACKSLASH_ESCAPES


def fast_escape_string(text: str) -> str:
    """What pymysql.converters.escape_string returns, via C-speed str.replace."""
    for char, escaped in MYSQL_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text


def create_store_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout_s: float = 30.0,
    pool_recycle_s: int = 1800,
    connect_timeout_s: int = 10,
    local_infile: bool = False,
    echo: bool = False,
) -> Engine:
    """An Engine for `url` (mysql+pymysql://, postgresql+psycopg://, sqlite:///…)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb"):
        return _mysql_engine(parsed, pool_size, max_overflow, pool_timeout_s, pool_recycle_s,
                             connect_timeout_s, local_infile, echo)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout_s,
            pool_recycle=pool_recycle_s, pool_pre_ping=True, echo=echo,
            connect_args={"connect_timeout": connect_timeout_s, "options": "-c timezone=UTC"},
        )
    if backend == "sqlite":
        return _sqlite_engine(parsed, echo)
    raise ValueError(f"unsupported database {backend!r}")


def _mysql_engine(url: URL, pool_size: int, max_overflow: int, pool_timeout_s: float,
                  pool_recycle_s: int, connect_timeout_s: int, local_infile: bool,
                  echo: bool) -> Engine:
    if url.drivername in ("mysql", "mariadb"):
        url = url.set(drivername=f"{url.drivername}+pymysql")
    connect_args: dict[str, Any] = {
        "charset": "utf8mb4",
        "connect_timeout": connect_timeout_s,
        "init_command": f"SET time_zone = '+00:00', sql_mode = '{MYSQL_SQL_MODE}'",
    }
    if local_infile:
        connect_args["local_infile"] = True
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout_s,
        pool_recycle=pool_recycle_s, pool_pre_ping=True, echo=echo,
        isolation_level="READ COMMITTED", connect_args=connect_args,
    )

    @sa.event.listens_for(engine, "connect")
    def _install_escapers(dbapi_connection: Any, _record: Any) -> None:
        install_fast_escapers(dbapi_connection)

    return engine


def install_fast_escapers(dbapi_connection: Any) -> None:
    """Give a PyMySQL connection the faster, equivalent escapers (`fast_escape_string`,
    `fast_value_escaper`). Its private hooks: should a later version rename them, this
    is just slower."""
    if hasattr(dbapi_connection, "_escape_string"):
        def escape_string(text: str, _conn: Any = dbapi_connection) -> str:
            if _conn.server_status & NO_BACKSLASH_ESCAPES:
                return text.replace("'", "''")
            return fast_escape_string(text)

        dbapi_connection._escape_string = escape_string
    if callable(getattr(dbapi_connection, "escape", None)):
        dbapi_connection.escape = fast_value_escaper(dbapi_connection)


def fast_value_escaper(dbapi_connection: Any) -> Callable[..., str]:
    """PyMySQL's `Connection.escape` (what binds every parameter into the statement text)
    for the values a loader sends most, without its chain of type checks: a page of 1,000
    rows binds about 15,000 values, and PyMySQL's generic path cost ~3 µs each. Anything
    else (dates, bytes, sequences) and any explicit mapping take PyMySQL's own path, so the
    text sent is the same byte for byte."""
    generic = dbapi_connection.escape

    def quoted(text: str) -> str:
        return f"'{dbapi_connection._escape_string(text)}'"

    def decimal(value: Decimal) -> str:
        return format(value, "f") if value.is_finite() else generic(value)

    def timestamp(value: datetime.datetime) -> str:
        # PyMySQL writes the wall time and drops any zone, as isoformat does for naive ones.
        return f"'{value.isoformat(' ')}'" if value.tzinfo is None else generic(value)

    direct: dict[type, Callable[[Any], str]] = {
        str: quoted, int: int.__repr__, type(None): lambda _value: "NULL",
        bool: lambda value: "1" if value else "0", Decimal: decimal,
        datetime.datetime: timestamp,
    }

    def escape(obj: Any, mapping: Any = None) -> str:
        render = direct.get(type(obj)) if mapping is None else None
        return render(obj) if render is not None else generic(obj, mapping)

    return escape


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {}
    if memory:
        # One shared connection, or every checkout would see a new empty database.
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(
        url, echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                      "isolation_level": None},
        **kwargs,
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # pysqlite's own transaction handling is off (isolation_level=None). Write
        # transactions (`in_transaction`) take the write lock at BEGIN, so one never fails
        # midway on "database is locked" when it upgrades from reading to writing; readers
        # begin deferred and do not block writers.
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
