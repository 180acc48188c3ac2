"""Database errors sorted into retry / data / fatal."""

from __future__ import annotations

import sqlite3

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from trestle_tasks.store.dberrors import classify


def wrap(kind: type[sa.exc.DBAPIError], orig: BaseException) -> sa.exc.DBAPIError:
    return kind("INSERT …", {}, orig)


class FakePgError(psycopg.OperationalError):
    def __init__(self, sqlstate: str) -> None:
        self._state = sqlstate
        super().__init__("pg")

    @property
    def sqlstate(self) -> str:  # type: ignore[override]
        return self._state


@pytest.mark.parametrize("error, verdict", [
    (wrap(sa.exc.OperationalError, pymysql.err.OperationalError(1213, "Deadlock")), "retry"),
    (wrap(sa.exc.OperationalError, pymysql.err.OperationalError(1205, "Lock wait")), "retry"),
    (wrap(sa.exc.OperationalError, pymysql.err.OperationalError(2006, "gone away")), "retry"),
    (wrap(sa.exc.OperationalError, pymysql.err.OperationalError(2013, "lost")), "retry"),
    (wrap(sa.exc.DataError, pymysql.err.DataError(1406, "Data too long")), "data"),
    (wrap(sa.exc.OperationalError, pymysql.err.OperationalError(1292, "bad date")), "data"),
    (wrap(sa.exc.ProgrammingError, pymysql.err.ProgrammingError(1146, "no table")), "fatal"),
    (wrap(sa.exc.OperationalError, FakePgError("40P01")), "retry"),
    (wrap(sa.exc.OperationalError, FakePgError("08006")), "retry"),
    (wrap(sa.exc.DataError, FakePgError("22001")), "data"),
    (wrap(sa.exc.ProgrammingError, FakePgError("42P01")), "fatal"),
    (wrap(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), "retry"),
    (wrap(sa.exc.OperationalError, sqlite3.OperationalError("no such table: x")), "fatal"),
    (sa.exc.TimeoutError("pool"), "retry"),
    (sa.exc.ArgumentError("nonsense"), "fatal"),
])
def test_classify(error: BaseException, verdict: str) -> None:
    assert classify(error) == verdict


def test_an_invalidated_connection_is_retried() -> None:
    error = sa.exc.OperationalError("x", {}, pymysql.err.InterfaceError(0, ""),
                                    connection_invalidated=True)
    assert classify(error) == "retry"
