"""The database server's clock as SQL expressions, one form per dialect.

Leases (the run lock's `expires_at`) are written and compared with these, never with a
host's clock: workers, cron hosts and the database then agree on when a lease lapsed,
however far apart their clocks drift. Values are UTC, in the column form `UTCDateTime`
uses on each dialect, so a lease written by one expression compares with another.

- MariaDB/MySQL: `UTC_TIMESTAMP(6)`, independent of the session time zone.
- PostgreSQL: `statement_timestamp()` (not `now()`, which is frozen at the start of a
  transaction that may have waited for a lock).
- SQLite: `strftime(…, 'now')`, milliseconds padded to the six digits SQLAlchemy writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from trestle_tasks.store.types import UTCDateTime, is_mysql

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


def db_now(dialect: Dialect) -> sa.ColumnElement[Any]:
    """The server's current UTC time."""
    return db_now_plus(dialect, 0.0)


def db_now_plus(dialect: Dialect, seconds: float) -> sa.ColumnElement[Any]:
    """The server's current UTC time plus `seconds` (microseconds on the servers,
    milliseconds on SQLite)."""
    if is_mysql(dialect):
        now: Any = sa.func.utc_timestamp(6)
        if seconds:
            now = sa.func.timestampadd(sa.literal_column("MICROSECOND"),
                                       round(seconds * 1_000_000), now)
    elif dialect.name == "postgresql":
        now = sa.func.statement_timestamp()
        if seconds:
            now = now + sa.func.make_interval(0, 0, 0, 0, 0, 0, float(seconds))
    elif dialect.name == "sqlite":
        now = sa.func.strftime(_SQLITE_FORMAT, "now", f"{seconds:+.3f} seconds").concat("000")
    else:
        raise ValueError(f"no database clock for the {dialect.name} dialect")
    return sa.type_coerce(now, UTCDateTime())


def read_db_now(engine: Engine) -> datetime:
    """The server's current UTC time, read (for reports that compare lease and run times
    with one clock whichever host they run on)."""
    with engine.connect() as conn:
        moment = conn.execute(sa.select(db_now(conn.dialect))).scalar_one()
    if not isinstance(moment, datetime):
        raise TypeError(f"the database clock read as {moment!r}")
    return moment
