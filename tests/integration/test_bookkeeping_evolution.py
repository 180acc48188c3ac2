"""A database made before the sync log counted retries and 429s gets those columns from
`migrate` (and from any sync, which evolves the bookkeeping tables before it plans), keeps
its rows, and counts them from then on."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from tests.store_data import SMALL_EDMX
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.store.migrate import evolve_bookkeeping, migrate
from trestle_tasks.store.sync_log import SyncLog
from trestle_tasks.store.types import UTCDateTime

NEW_COLUMNS = ("api_retries", "api_rate_limited")


def columns(target: StoreTarget, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(target.engine).get_columns(table,
                                                                      schema=target.schema)}


def drop_new_columns(target: StoreTarget) -> None:
    """Turn freshly made bookkeeping tables into those of the previous version."""
    with target.engine.begin() as conn:
        for table in ("etl_sync_log", "etl_sync_window"):
            for column in NEW_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE {target.table(table)} DROP COLUMN {column}")


def test_migrate_adds_the_retry_and_429_counters_to_an_old_sync_log(store_target):  # noqa: F811
    target = store_target
    metadata = parse_metadata(SMALL_EDMX)
    migrate(target.engine, metadata, schema=target.schema)
    drop_new_columns(target)
    assert not set(NEW_COLUMNS) & columns(target, "etl_sync_log")
    # A run the old version wrote: through a table without the new columns.
    old_log = sa.Table("etl_sync_log", sa.MetaData(schema=target.schema),
                       sa.Column("run_id", sa.String(64)), sa.Column("resource", sa.String(128)),
                       sa.Column("status", sa.String(16)), sa.Column("started_at", UTCDateTime()),
                       sa.Column("records_fetched", sa.BigInteger()),
                       sa.Column("api_requests", sa.BigInteger()))
    with target.engine.begin() as conn:
        conn.execute(old_log.insert().values(
            run_id="old", resource="Property", status="succeeded",
            started_at=datetime.now(UTC), records_fetched=7, api_requests=2))

    report = migrate(target.engine, metadata, schema=target.schema)

    assert sorted(report.added_columns["etl_sync_log"]) == sorted(NEW_COLUMNS)
    assert sorted(report.added_columns["etl_sync_window"]) == sorted(NEW_COLUMNS)
    sync_log = SyncLog(target.engine, schema=target.schema)
    old = sync_log.get_run("old", "Property")
    assert (old.records_fetched, old.api_requests, old.api_retries,
            old.api_rate_limited) == (7, 2, 0, 0)
    sync_log.open_run("new", "Property")
    sync_log.start_window("new", "Property", "w00000")
    sync_log.finish_window("new", "Property", "w00000", status="succeeded", api_requests=5,
                          retries=2, rate_limited=1)
    sync_log.add_counts("new", "Property", api_requests=1, retries=1)
    run = sync_log.close_run("new", "Property", status="succeeded")
    assert (run.api_requests, run.api_retries, run.api_rate_limited) == (6, 3, 1)
    # Nothing left to add: a second pass changes nothing.
    assert evolve_bookkeeping(target.engine, target.schema) == []
