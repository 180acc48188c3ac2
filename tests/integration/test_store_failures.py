"""Batches under failure: a batch is one transaction (all or nothing), connection loss and
deadlocks are retried, and a row the database refuses rejects that record only."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa

from tests.store_data import migrate_small
from tests.store_fixtures import (
    StoreTarget,
    close_target,
    count_rows,
    open_target,
    statement_text,
    store_target,  # noqa: F401
)
from trestle_tasks.core.errors import RetriesExhaustedError, StoreError
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.sync_log import SyncLog
from trestle_tasks.store.transform import DATABASE_REFUSED

pytestmark = pytest.mark.integration

FAST = RetryPolicy(budget_s=20, base_delay_s=0.01, max_delay_s=0.1)


def batch(n: int, prefix: str = "K") -> list[dict[str, Any]]:
    return [{"ListingKey": f"{prefix}{i:04d}", "City": f"City {i}",
             "ModificationTimestamp": "2024-01-01T00:00:00.5Z"} for i in range(n)]


@pytest.fixture
def target(store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(store_target)
    return store_target


@pytest.fixture
def mariadb(tmp_path: Path) -> Any:
    target = open_target("mariadb", tmp_path)
    migrate_small(target)
    yield target
    close_target(target)


class FailOn:
    """A before_cursor_execute hook that raises on the n-th upsert statement."""

    def __init__(self, engine: sa.engine.Engine, nth: int, error: BaseException,
                 times: int = 1) -> None:
        self.engine, self.nth, self.error, self.times = engine, nth, error, times
        self.seen = 0

    def __call__(self, conn: Any, cursor: Any, statement: str | bytes, *args: Any) -> None:
        statement = statement_text(statement)
        if statement.lstrip().upper().startswith("INSERT") and "etl_rejects" not in statement:
            self.seen += 1
            if self.seen >= self.nth and self.times > 0:
                self.times -= 1
                raise self.error

    def __enter__(self) -> FailOn:
        sa.event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self)


def test_a_failed_batch_leaves_nothing_behind(target: StoreTarget) -> None:
    sync_log = SyncLog(target.engine, schema=target.schema)
    sync_log.open_run("run", "Property")
    # A tiny statement budget: every record is its own statement inside the one batch.
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=10, max_statement_bytes=1)
    with FailOn(target.engine, nth=3, error=RuntimeError("disk on fire")), \
            pytest.raises(RuntimeError):
        loader.load([*batch(10), {"ListingKey": ""}], run_id="run")
    assert count_rows(target, "property") == 0
    assert count_rows(target, "etl_rejects") == 0
    run = sync_log.get_run("run", "Property")
    assert run is not None and run.records_fetched == 0


@pytest.mark.parametrize("code", [1213, 1205, 2013])
def test_deadlocks_and_lost_connections_are_retried(target: StoreTarget, code: int) -> None:
    if target.dialect != "mariadb":
        pytest.skip("MySQL error numbers")
    sync_log = SyncLog(target.engine, schema=target.schema)
    sync_log.open_run("run", "Property")
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=10, max_statement_bytes=1, retry=FAST)
    error = pymysql.err.OperationalError(code, "injected")
    with FailOn(target.engine, nth=2, error=error, times=2):
        result = loader.load(batch(10), run_id="run")
    assert result.upserted == 10
    assert count_rows(target, "property") == 10
    run = sync_log.get_run("run", "Property")
    assert run is not None and (run.records_fetched, run.records_upserted) == (10, 10)


def test_retries_give_up_within_their_budget(target: StoreTarget) -> None:
    if target.dialect != "mariadb":
        pytest.skip("MySQL error numbers")
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               retry=RetryPolicy(budget_s=0.3, base_delay_s=0.05,
                                                 max_delay_s=0.1))
    error = pymysql.err.OperationalError(1213, "Deadlock found")
    with FailOn(target.engine, nth=1, error=error, times=10**6), \
            pytest.raises(RetriesExhaustedError):
        loader.load(batch(3))
    assert count_rows(target, "property") == 0


def test_a_killed_connection_is_retried(mariadb: StoreTarget) -> None:
    """The server really drops the connection in the middle of a batch."""
    loader = RecordLoader.open(mariadb.engine, "Property", schema=mariadb.schema,
                               batch_size=50, max_statement_bytes=1, retry=FAST)
    killed = threading.Event()

    def kill_once(conn: Any, cursor: Any, statement: str | bytes, *args: Any) -> None:
        statement = statement_text(statement)
        if killed.is_set() or "property" not in statement or not statement.startswith(
                "INSERT"):
            return
        killed.set()
        victim = conn.connection.dbapi_connection.thread_id()
        with mariadb.engine.connect() as other:
            other.exec_driver_sql(f"KILL CONNECTION {victim}")

    sa.event.listen(mariadb.engine, "before_cursor_execute", kill_once)
    try:
        result = loader.load(batch(50))
    finally:
        sa.event.remove(mariadb.engine, "before_cursor_execute", kill_once)
    assert killed.is_set()
    assert result.upserted == 50
    assert count_rows(mariadb, "property") == 50


def test_a_row_the_database_refuses_rejects_only_that_record(target: StoreTarget) -> None:
    """If a typed column cannot take a value validation let through (here the column was
    narrowed behind the store's back), only that record is rejected."""
    if target.dialect == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    city = target.engine.dialect.identifier_preparer.quote("City")
    with target.engine.begin() as conn:
        if target.dialect == "mariadb":
            conn.exec_driver_sql(f"ALTER TABLE {target.table('property')} "
                                 f"MODIFY {city} VARCHAR(8)")
        else:
            # PostgreSQL refuses to retype a column its typed view reads: drop the view.
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {target.table('property_fields')}")
            conn.exec_driver_sql(f"ALTER TABLE {target.table('property')} "
                                 f"ALTER COLUMN {city} TYPE VARCHAR(8)")
    records = batch(6)
    records[2]["City"] = "Much too long for eight"
    records[4]["City"] = "Also far too long"
    sync_log = SyncLog(target.engine, schema=target.schema)
    sync_log.open_run("run", "Property")
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema, retry=FAST)
    records[0]["City"] = "short"
    result = loader.load(records, run_id="run")
    assert (result.upserted, result.rejected) == (4, 2)
    assert {r.record_key for r in result.rejections} == {"K0002", "K0004"}
    assert {r.reason for r in result.rejections} == {DATABASE_REFUSED}
    stored = {r["ListingKey"] for r in export_records(target.engine, "Property",
                                                      schema=target.schema)}
    assert stored == {"K0000", "K0001", "K0003", "K0005"}
    run = sync_log.get_run("run", "Property")
    assert run is not None and (run.records_upserted, run.records_rejected) == (4, 2)
    assert count_rows(target, "etl_rejects") == 2


def test_a_failed_upsert_names_its_statement_never_its_values(mariadb: Any) -> None:
    """The MySQL upsert carries its values in its text (store/literal_sql.py): an error
    chained to the StoreError a task fails with shows a short description instead."""
    loader = RecordLoader.open(mariadb.engine, "Property", schema=mariadb.schema, retry=FAST)
    with mariadb.engine.begin() as conn:  # a fatal error: the table is gone
        conn.exec_driver_sql(f"DROP TABLE {mariadb.table('property')}")
    records = batch(3)
    records[1]["City"] = "Secretly specific city name"
    with pytest.raises(StoreError) as raised:
        loader.load(records)
    cause = raised.value.__cause__
    assert isinstance(cause, sa.exc.StatementError)
    assert "Secretly specific" not in str(cause)
    assert "an upsert of 3 rows into property" in str(cause)
    assert len(str(cause)) < 1000


def test_with_sql_logging_on_the_statement_is_sent_with_bound_values(
        mariadb: Any, caplog: pytest.LogCaptureFixture) -> None:
    """SQLAlchemy's statement log shows the parameters (cut short), never a text that
    holds every value: with it on, the loader binds as PyMySQL does."""
    sent: list[str | bytes] = []

    def record(conn: Any, cursor: Any, statement: str | bytes, *args: Any) -> None:
        sent.append(statement)

    loader = RecordLoader.open(mariadb.engine, "Property", schema=mariadb.schema, retry=FAST)
    sa.event.listen(mariadb.engine, "before_cursor_execute", record)
    try:
        with caplog.at_level("INFO", logger="sqlalchemy.engine.Engine"):
            assert loader.load(batch(3)).upserted == 3
        loader.load(batch(3, prefix="L"))
    finally:
        sa.event.remove(mariadb.engine, "before_cursor_execute", record)
    upserts = [s for s in sent
               if statement_text(s).startswith(f"INSERT INTO {mariadb.schema}.property ")]
    assert [type(s) for s in upserts] == [str, bytes]
    assert count_rows(mariadb, "property") == 6
