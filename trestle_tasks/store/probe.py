"""Whether a database answers, asked before work starts: a command fails at once with the
driver's error (or how to create a database that does not exist) instead of after the
store's retry budget, which is there for outages in the middle of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.masking import mask_url

# MySQL/MariaDB: ER_BAD_DB_ERROR. PostgreSQL says it in words (SQLSTATE 3D000 is not
# always passed on for a connection refused at start-up).
_MYSQL_UNKNOWN_DATABASE = 1049


def require_database(engine: Engine) -> None:
    """Open and close one connection; a database that does not exist is a
    ConfigurationError saying how to create it (the driver's "Unknown database" does not)."""
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        hint = missing_database_hint(engine.url, error)
        if hint is None:
            raise
        raise ConfigurationError(hint) from error


def describe_database(url: str, *, timeout_s: float) -> str:
    """The database `url` names and its server's version, after one connection within
    `timeout_s`; a SQLite file is not created, only its folder checked."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            return "in-memory SQLite"
        folder = Path(database).resolve().parent
        if not folder.is_dir():
            raise FileNotFoundError(f"folder {folder} does not exist")
        return f"SQLite file {Path(database).resolve()}"
    # Both drivers take `connect_timeout` (seconds); psycopg's default is to wait forever.
    engine = sa.create_engine(url, connect_args={"connect_timeout": int(timeout_s)})
    try:
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT VERSION()")).scalar()
    except sa.exc.OperationalError as error:  # not created yet: say how to create it
        hint = missing_database_hint(parsed, error)
        if hint is None:
            raise
        raise ConfigurationError(hint) from None
    finally:
        engine.dispose()
    return f"{mask_url(url)} ({version})"


def missing_database_hint(url: Any, error: BaseException) -> str | None:
    """How to create the database `url` names, if `error` says it does not exist."""
    orig = getattr(error, "orig", None)
    args = getattr(orig, "args", ())
    backend, name = url.get_backend_name(), url.database
    where = f"{url.host or 'localhost'}:{url.port or ''}".rstrip(":")
    if backend in ("mysql", "mariadb") and args and args[0] == _MYSQL_UNKNOWN_DATABASE:
        return (f"database {name!r} does not exist on {where}: create it with "
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4; "
                "(then run `trestle-etl migrate`)")
    if backend == "postgresql" and f'database "{name}" does not exist' in str(orig):
        return (f"database {name!r} does not exist on {where}: create it with "
                f'CREATE DATABASE "{name}"; (or createdb {name}; then run '
                "`trestle-etl migrate`)")
    return None
