"""Engine set-up: no connection at creation, and the faster MySQL escaper is exact."""

from __future__ import annotations

import pymysql.converters
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.store.engine import create_store_engine, fast_escape_string


@given(st.text(st.characters(blacklist_categories=("Cs",))) | st.text("\\'\"\n\r\x00\x1a ab"))
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
