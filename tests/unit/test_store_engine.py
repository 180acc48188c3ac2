"""Engine set-up: no connection at creation, and the faster MySQL escapers are exact: the
statement text PyMySQL sends is the same with them as without, in both escaping modes."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pymysql
import pymysql.converters
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.store.engine import (
    create_store_engine,
    fast_escape_string,
    install_fast_escapers,
)

TEXT = st.text(st.characters(blacklist_categories=("Cs",))) | st.text("\\'\"\n\r\x00\x1a ab%")
VALUES = (st.none() | st.booleans() | st.integers() | TEXT
          | st.decimals(allow_nan=False, allow_infinity=False, places=4)
          | st.decimals(allow_nan=True, allow_infinity=True)
          | st.floats(allow_nan=False, allow_infinity=False)
          | st.datetimes(timezones=st.none() | st.timezones()) | st.dates()
          | st.binary(max_size=20)
          | st.lists(st.integers() | TEXT, max_size=3).map(tuple))


def unconnected(no_backslash_escapes: bool) -> pymysql.connections.Connection:
    connection = pymysql.connections.Connection(defer_connect=True)
    connection.server_status = 512 if no_backslash_escapes else 0
    return connection


def escaped(connection, value) -> str | type:
    try:
        return connection.escape(value)
    except Exception as error:  # the same refusal either way (NaN, infinity)
        return type(error)


@given(st.lists(VALUES, max_size=20), st.booleans())
def test_fast_value_escaper_sends_the_same_text_as_pymysql(values, no_backslash_escapes):
    plain, fast = unconnected(no_backslash_escapes), unconnected(no_backslash_escapes)
    install_fast_escapers(fast)
    assert [escaped(fast, v) for v in values] == [escaped(plain, v) for v in values]


def test_fast_value_escaper_covers_what_a_loader_binds():
    connection = unconnected(True)
    install_fast_escapers(connection)
    assert connection.escape("it's") == "'it''s'"
    assert connection.escape(Decimal("1E+3")) == "1000"
    assert connection.escape(True) == "1" and connection.escape(None) == "NULL"
    assert connection.escape(datetime.datetime(2026, 1, 2, 3, 4, 5, 6)) == \
        "'2026-01-02 03:04:05.000006'"
    with pytest.raises(pymysql.err.ProgrammingError):
        connection.escape(Decimal("NaN"))


@given(TEXT)
def test_fast_escape_matches_pymysql(text: str) -> None:
    assert fast_escape_string(text) == pymysql.converters.escape_string(text)


def test_creating_an_engine_connects_to_nothing() -> None:
    for url in ("mysql+pymysql://u:p@host.invalid:3306/db",
                "postgresql://u:p@host.invalid/db", "sqlite:////nonexistent/dir/x.db",
                "mariadb://u@host.invalid/db"):
        engine = create_store_engine(url, local_infile=True)
        assert engine.pool.checkedout() == 0
    assert create_store_engine("postgresql://h/db").dialect.driver == "psycopg"
    assert create_store_engine("mysql://h/db").dialect.driver == "pymysql"
