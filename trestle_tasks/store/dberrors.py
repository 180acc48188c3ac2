"""Database errors sorted once: retry the transaction, blame one record, or give up.

- Retry: the connection broke (server gone away, lost, restarted, pool timeout), or the
  transaction lost a deadlock or a lock wait. The whole transaction was rolled back, and
  every statement here is idempotent, so running it again is safe.
- Data: the server refused a value. Validation should have caught it; when it did not, the
  batch is re-run record by record so only the refused record is rejected.
- Anything else (missing table, syntax, permissions) is fatal: retrying cannot fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.errors import StoreError, StoreUnavailableError, register_classifier
from trestle_tasks.core.retry import RetryPolicy, call_with_retries
from trestle_tasks.store.engine import SQLITE_IMMEDIATE

Verdict = Literal["retry", "data", "fatal"]

# MySQL/MariaDB error numbers
_MYSQL_RETRY = {
    1205,  # lock wait timeout
    1213,  # deadlock
    1040,  # too many connections
    1053,  # server shutdown in progress
    1927,  # MariaDB: connection was killed
    2003, 2006, 2013,  # cannot connect, server has gone away, lost connection
    4031,  # MySQL 8: disconnected by the server for inactivity
}
_MYSQL_DATA = {
    1048,  # column cannot be null
    1264,  # out of range value
    1265,  # data truncated
    1292,  # incorrect datetime/date value
    1366,  # incorrect string value
    1406,  # data too long
    3140,  # invalid JSON
}
# PostgreSQL SQLSTATE classes and codes
_PG_RETRY_PREFIXES = ("08", "57P", "53")  # connection, operator intervention, resources
_PG_RETRY = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available
_PG_DATA_PREFIXES = ("22", "23")  # data exception, integrity violation

DEFAULT_DB_RETRY = RetryPolicy(budget_s=120.0, base_delay_s=0.2, max_delay_s=10.0)

T = TypeVar("T")


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return "retry"
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return "retry"
    orig = getattr(exc, "orig", None)
    if orig is None:
        return "fatal"
    # By the driver that raised it (its classes, or subclasses of them).
    drivers = {cls.__module__.split(".")[0] for cls in type(orig).__mro__}
    if "pymysql" in drivers:
        code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
        if code in _MYSQL_RETRY:
            return "retry"
        if code in _MYSQL_DATA or isinstance(exc, sa.exc.DataError):
            return "data"
        if code is not None and code >= 2000 and isinstance(exc, sa.exc.OperationalError):
            return "retry"  # client-side (CR_*) errors: the connection is unusable
        return "fatal"
    if "psycopg" in drivers:
        state = getattr(orig, "sqlstate", None) or ""
        if state in _PG_RETRY or state.startswith(_PG_RETRY_PREFIXES):
            return "retry"
        if state.startswith(_PG_DATA_PREFIXES):
            return "data"
        if not state and isinstance(exc, sa.exc.OperationalError):
            return "retry"  # no SQLSTATE: the connection itself failed
        return "fatal"
    if "sqlite3" in drivers:
        text = str(orig).lower()
        if "locked" in text or "busy" in text:
            return "retry"
        if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
            return "data"
        return "fatal"
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        return "data"
    return "fatal"


def _retriable(exc: BaseException) -> bool | None:
    """The store's answer to errors.is_retriable: database errors retry by `classify`."""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None
    return classify(exc) == "retry"


def teach_is_retriable() -> None:
    """Let errors.is_retriable read database errors (errors.py imports nothing above it).
    Every Store does so when built, before it can raise one; idempotent."""
    register_classifier(_retriable)


def describe(exc: BaseException) -> str:
    """The server's message without the statement and parameters (which hold the data)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.splitlines()[0][:500] if text else type(exc).__name__


def in_transaction(
    engine: Engine,
    work: Callable[[sa.Connection], T],
    *,
    policy: RetryPolicy = DEFAULT_DB_RETRY,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run `work` in one transaction, retrying it whole on connection loss and deadlocks.

    A non-retriable database error becomes StoreError; running out of retries raises
    RetriesExhaustedError (retriable at the task level) chained to StoreUnavailableError.
    """

    def attempt() -> T:
        try:
            with engine.connect() as conn:
                conn.execution_options(**{SQLITE_IMMEDIATE: True})
                with conn.begin():
                    return work(conn)
        except sa.exc.SQLAlchemyError as exc:
            verdict = classify(exc)
            if verdict == "retry":
                raise StoreUnavailableError(f"database unavailable: {describe(exc)}") from exc
            raise StoreError(f"database refused the batch: {describe(exc)}",
                             verdict=verdict) from exc

    def report(error: BaseException, wait: float) -> None:
        if on_retry is not None:
            on_retry(error, wait)

    return call_with_retries(attempt, policy, on_retry=report)
