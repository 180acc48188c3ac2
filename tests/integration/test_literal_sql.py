"""The MySQL loader's statements with their values written in as bytes (store/literal_sql.py)
are byte for byte what PyMySQL makes of the same statement and values (but for `"`, not
escaped inside a single-quoted literal), in both of the server's escaping modes, and store
exactly the values given.

Real MariaDB: the escaping mode is the server's (NO_BACKSLASH_ESCAPES, as PyMySQL learns
it from the server's status), and PyMySQL's own `mogrify` on the same connection is the
reference.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.store_fixtures import server_engine
from trestle_tasks.store.literal_sql import LiteralUpsert, server_wants_no_backslash

# One escape sequence of PyMySQL's: a backslash and the character after it.
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def without_escaped_double_quotes(statement: bytes) -> bytes:
    """PyMySQL's statement with each `\\"` written as `"` (every other escape kept)."""
    return _ESCAPE.sub(lambda m: b'"' if m.group(1) == b'"' else m.group(0), statement)


HEAD = "INSERT INTO {table} (k, v, n) VALUES (%s, %s, %s)"
REPEAT = ", (%s, %s, %s)"
# A literal percent sign (SQLAlchemy doubles it in pyformat text) in the tail.
TAIL = " ON DUPLICATE KEY UPDATE v = VALUES(v), n = VALUES(n) /* 100%% */"

# Any text a record can hold: every plane, and the characters MySQL escapes, often.
texts = st.lists(st.one_of(
    st.characters(blacklist_categories=["Cs"]),
    st.sampled_from(["'", '"', "\\", "\0", "\n", "\r", "\x1a", "%", "%s", "é", "“"]),
), max_size=30).map("".join)
others = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**9,
                max_value=10**9),
    st.datetimes(min_value=datetime.datetime(1000, 1, 1)),
)


@pytest.fixture(scope="module")
def mariadb_table() -> Iterator[tuple[sa.Engine, str]]:
    engine = server_engine("mariadb")
    table = f"literal_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (k VARCHAR(64) PRIMARY KEY, "
                             "v LONGTEXT, n TEXT) CHARACTER SET utf8mb4")
    yield engine, table
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {table}")
    engine.dispose()


def _statement(table: str) -> LiteralUpsert:
    literal = LiteralUpsert.from_text(HEAD.format(table=table), REPEAT, TAIL, "utf-8",
                                      table=table)
    assert literal is not None
    return literal


def _set_mode(driver: Any, no_backslash: bool) -> None:
    cursor = driver.cursor()
    cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"
                   if no_backslash else
                   "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
    cursor.close()
    assert server_wants_no_backslash(driver) is no_backslash


@given(rows=st.lists(st.tuples(texts, texts, others), min_size=1, max_size=5),
       no_backslash=st.booleans())
def test_the_statement_is_the_one_pymysql_makes(
        mariadb_table: tuple[sa.Engine, str], rows: list[tuple[str, str, Any]],
        no_backslash: bool) -> None:
    engine, table = mariadb_table
    literal = _statement(table)
    values = [value for row in rows for value in row]
    sql = HEAD.format(table=table) + REPEAT * (len(rows) - 1) + TAIL
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        _set_mode(driver, no_backslash)
        ours = literal.render(len(rows), values, driver.escape, no_backslash)
        theirs = driver.cursor().mogrify(sql, values).encode(driver.encoding,
                                                             "surrogateescape")
        _set_mode(driver, False)
    assert ours == (theirs if no_backslash else without_escaped_double_quotes(theirs))


def test_only_the_double_quote_is_left_unescaped() -> None:
    """The reference the property compares with: PyMySQL's escapes, `\\"` undone alone."""
    assert without_escaped_double_quotes(rb"""'a\"b\\\"c\'d\\\\"e\n'""") == \
        rb"""'a"b\\"c\'d\\\\"e\n'"""


@given(rows=st.lists(st.tuples(texts, texts), min_size=1, max_size=5),
       no_backslash=st.booleans())
def test_the_values_are_stored_exactly(
        mariadb_table: tuple[sa.Engine, str], rows: list[tuple[str, str]],
        no_backslash: bool) -> None:
    engine, table = mariadb_table
    # Keys as the table compares them (utf8mb4's collation folds case and accents): distinct.
    keys = [f"{index}-{uuid.uuid4().hex}" for index in range(len(rows))]
    values = [value for key, (v, n) in zip(keys, rows, strict=True) for value in (key, v, n)]
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        _set_mode(driver, no_backslash)
        statement = _statement(table).render(len(rows), values, driver.escape, no_backslash)
        conn.exec_driver_sql(statement,  # type: ignore[arg-type]
                             execution_options={"no_parameters": True})
        _set_mode(driver, False)
        query = sa.text(f"SELECT k, v, n FROM {table} WHERE k IN :keys")
        stored = {k: (v, n) for k, v, n in conn.execute(
            query.bindparams(sa.bindparam("keys", expanding=True)), {"keys": keys})}
    assert stored == dict(zip(keys, rows, strict=True))


def test_a_statement_with_a_stray_percent_sign_is_not_rendered() -> None:
    assert LiteralUpsert.from_text("INSERT INTO t VALUES (%s) -- 5% off", "", "", "utf-8",
                                   table="t") is None


def test_values_that_do_not_fit_the_statement_are_refused() -> None:
    with pytest.raises(ValueError, match="3 values for a statement of 2 rows"):
        _statement("t").render(2, ["a", "b", "c"], repr, False)

