"""Several feeds on one server, one schema each (feeds.py): on MariaDB and PostgreSQL the
same ListingKey upserted by two feeds stays two records, each feed's Store, sync log,
watermarks, run locks and views see only its own, migrate creates a missing schema, and
one statement still reads across feeds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from tests.store_data import SMALL_EDMX
from tests.store_fixtures import MARIADB_URL, POSTGRES_URL, server_engine
from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.core.errors import StoreError
from trestle_tasks.core.feeds import load_feeds
from trestle_tasks.core.settings import Settings
from trestle_tasks.store.engine import create_store_engine
from trestle_tasks.store.migrate import ensure_schema
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import Watermark

pytestmark = pytest.mark.integration

SERVERS = (pytest.param("mariadb", id="mariadb"), pytest.param("postgresql", id="postgresql"))


@dataclass
class Feeds:
    dialect: str
    settings: dict[str, Settings]
    stores: dict[str, Store]

    def qualified(self, feed: str, name: str) -> str:
        preparer = self.stores[feed].engine.dialect.identifier_preparer
        return f"{preparer.quote_schema(self.schema(feed))}.{preparer.quote(name)}"

    def column(self, name: str) -> str:
        """A column name quoted: PostgreSQL folds unquoted ones to lower case."""
        return server_engine(self.dialect).dialect.identifier_preparer.quote(name)

    def schema(self, feed: str) -> str:
        schema = self.settings[feed].database_schema
        assert schema is not None
        return schema


def drop_schema(dialect: str, schema: str) -> None:
    with server_engine(dialect).begin() as conn:
        if dialect == "mariadb":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema}`")
        else:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def has_schema(dialect: str, schema: str) -> bool:
    return sa.inspect(server_engine(dialect)).has_schema(schema)


@pytest.fixture(params=SERVERS)
def feeds(request: pytest.FixtureRequest) -> Iterator[Feeds]:
    """Two feeds, `n<hex>` and `s<hex>` (unique per test: runs sharing the servers never
    meet), on one server with the default schema per feed, dropped afterwards."""
    dialect = request.param
    tag = uuid.uuid4().hex[:10]
    north, south = f"n{tag}", f"s{tag}"
    environ = {
        "TRESTLE_FEEDS": f"{north},{south}",
        "DATABASE_URL": MARIADB_URL if dialect == "mariadb" else POSTGRES_URL,
        f"FEED_{north.upper()}_TRESTLE_CLIENT_ID": "north",
        f"FEED_{north.upper()}_TRESTLE_CLIENT_SECRET": "north-secret",
        f"FEED_{south.upper()}_TRESTLE_CLIENT_ID": "south",
        f"FEED_{south.upper()}_TRESTLE_CLIENT_SECRET": "south-secret",
        f"FEED_{south.upper()}_DB_BATCH_SIZE": "7",
    }
    settings = load_feeds(environ, env_file=None)
    assert [s.database_schema for s in settings.values()] == [f"feed_{north}", f"feed_{south}"]
    stores = {name: Store.from_settings(s, pool_size=2, max_overflow=2)
              for name, s in settings.items()}
    try:
        yield Feeds(dialect, settings, stores)
    finally:
        for store in stores.values():
            store.dispose()
        for s in settings.values():
            assert s.database_schema is not None
            drop_schema(dialect, s.database_schema)


def test_migrate_creates_each_feeds_schema_and_its_tables(feeds: Feeds) -> None:
    north, south = feeds.stores
    assert not has_schema(feeds.dialect, feeds.schema(north))
    report = feeds.stores[north].migrate(SMALL_EDMX, ["Property"])
    assert report.created_tables == ["property"]
    assert has_schema(feeds.dialect, feeds.schema(north))
    assert not has_schema(feeds.dialect, feeds.schema(south))
    inspector = sa.inspect(server_engine(feeds.dialect))
    assert {"property", "etl_sync_log", "etl_watermark", "etl_run_lock", "etl_rejects"} <= \
        set(inspector.get_table_names(schema=feeds.schema(north)))
    # Again: nothing to create, the schema included.
    assert not ensure_schema(feeds.stores[north].engine, feeds.schema(north))
    assert not feeds.stores[north].migrate(SMALL_EDMX, ["Property"]).changed
    assert feeds.stores[south].batch_size == 7 and feeds.stores[north].batch_size == 1000


def test_the_same_listing_key_in_two_feeds_is_two_records(feeds: Feeds) -> None:
    north, south = feeds.stores
    for name, city in ((north, "Northfield"), (south, "Southport")):
        store = feeds.stores[name]
        store.migrate(SMALL_EDMX, ["Property"])
        result = store.upsert("Property", [
            {"ListingKey": "K1", "City": city, "ListPrice": 100,
             "ModificationTimestamp": "2024-01-01T00:00:00Z"},
            {"ListingKey": f"only-{name}", "City": city},
            {"ListingKey": 7},  # rejected: a number where the key is a string
        ])
        assert (result.upserted, result.rejected) == (2, 1)
    for name, city in ((north, "Northfield"), (south, "Southport")):
        store = feeds.stores[name]
        assert list(store.stored_keys("Property")) == ["K1", f"only-{name}"]
        assert {r["City"] for r in store.records("Property")} == {city}
        assert store.count("Property") == 2
        assert list(store.rejected_versions("Property")) == ["7"]
        view = feeds.qualified(name, store.view_name("Property"))
        city_column, key_column = feeds.column("City"), feeds.column("ListingKey")
        with store.engine.connect() as conn:
            assert conn.execute(sa.text(
                f"SELECT {city_column} FROM {view} WHERE {key_column} = 'K1'")
            ).scalar_one() == city
    # Deleting in one feed leaves the other's record alone.
    assert feeds.stores[north].mark_deleted("Property", ["K1"]) == 1
    assert list(feeds.stores[south].stored_keys("Property")) == ["K1", f"only-{south}"]

    # One statement reads across feeds, on the same server.
    key, city = feeds.column("ListingKey"), feeds.column("City")
    union = " UNION ALL ".join(
        f"SELECT '{name}' AS feed, {key}, {city} FROM {feeds.qualified(name, 'property')}"
        for name in feeds.stores)
    with server_engine(feeds.dialect).connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM ({union}) u WHERE {key} = 'K1' "
                                    "ORDER BY feed")).all()
    assert [tuple(row) for row in rows] == [(north, "K1", "Northfield"),
                                            (south, "K1", "Southport")]


def test_sync_log_watermarks_and_run_locks_are_per_feed(feeds: Feeds) -> None:
    north, south = feeds.stores
    # The run lock is often the first thing a run touches: it creates the schema too.
    south_lock = DatabaseRunLock(feeds.stores[south].engine, schema=feeds.schema(south))
    north_lock = DatabaseRunLock(feeds.stores[north].engine, schema=feeds.schema(north))
    south_grant = south_lock.acquire("Property", "south-run", 60)
    assert south_grant is not None and has_schema(feeds.dialect, feeds.schema(south))
    # Same resource, other feed: another lock, free.
    north_grant = north_lock.acquire("Property", "north-run", 60)
    assert north_grant is not None
    assert south_lock.holder("Property").owner == "south-run"  # type: ignore[union-attr]
    assert north_lock.holder("Property").owner == "north-run"  # type: ignore[union-attr]

    log = feeds.stores[north].sync_log
    log.open_run("north-run", "Property")
    log.add_counts("north-run", "Property", fetched=3, upserted=3)
    log.close_run("north-run", "Property", status="succeeded")
    mark = Watermark.parse("2024-05-01T12:00:00.1234567Z", "K1")
    assert log.advance_watermark("Property", mark, run_id="north-run")
    assert log.read_watermark("Property") == mark
    assert [run.run_id for run in log.recent_runs()] == ["north-run"]

    other = feeds.stores[south].sync_log
    assert other.read_watermark("Property") is None
    assert other.watermarks() == {}
    assert other.recent_runs() == []
    assert other.get_run("north-run", "Property") is None
    assert north_lock.release(north_grant) and south_lock.release(south_grant)


@pytest.fixture(params=SERVERS)
def powerless_engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, sa.Engine]]:
    """An engine logged in as a user who may not create schemas or databases."""
    dialect = request.param
    user = f"tt_nocreate_{uuid.uuid4().hex[:8]}"
    admin = server_engine(dialect)
    with admin.begin() as conn:
        if dialect == "mariadb":
            conn.execute(sa.text(f"CREATE USER '{user}'@'%'"))
            # All rights on its own database, as an application user has, none beyond.
            database = sa.make_url(MARIADB_URL).database
            conn.execute(sa.text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'"))
        else:
            conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
    url = sa.make_url(MARIADB_URL if dialect == "mariadb" else POSTGRES_URL).set(
        username=user, password=None)
    engine = create_store_engine(url, pool_size=1, max_overflow=0)
    try:
        yield dialect, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            if dialect == "mariadb":
                conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
            else:
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{user}"')


def test_a_user_who_may_not_create_the_schema_is_told_what_to_run(
        powerless_engine: tuple[str, sa.Engine]) -> None:
    dialect, engine = powerless_engine
    schema = f"feed_denied_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreError) as caught:
        ensure_schema(engine, schema)
    message = str(caught.value)
    kind = "database" if dialect == "mariadb" else "schema"
    assert message.startswith(f"cannot create the {kind} {schema} the tables go in: the "
                              f"database user {engine.url.username} may not (")
    assert ("CREATE DATABASE" if dialect == "mariadb" else "CREATE SCHEMA") in message
    assert not has_schema(dialect, schema)
    # The same through migrate, which a feed's first `trestle-etl migrate` runs.
    store = Store(engine, schema=schema)
    with pytest.raises(StoreError):
        store.migrate(SMALL_EDMX, ["Property"])
