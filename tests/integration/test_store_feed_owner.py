"""A schema belongs to one feed (issue 22, item 11). feeds.py refuses two feeds configured
into one place only as far as their URLs tell: `127.0.0.1` and `localhost` for the same
server let two feeds share one schema, overwriting each other's rows, watermarks and run
locks. Now `127.0.0.1`/`localhost` are one host to that check, and, for the spellings no
configuration can tell apart (a DNS alias, a symlinked SQLite file, a second deployment),
the schema records its feed (etl_owner): a migrate or run of another feed is refused
before it writes anything."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.store_data import SMALL_EDMX
from tests.store_fixtures import MARIADB_URL, POSTGRES_URL, server_engine
from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.core.errors import ConfigurationError, SchemaMismatchError
from trestle_tasks.core.feeds import load_feeds
from trestle_tasks.core.settings import Settings
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import Watermark
from trestle_tasks.sync.plan import WindowSizing, plan_run
from trestle_tasks.sync.reconcile import reconcile

DIALECTS = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.integration),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
)


@dataclass
class Place:
    """One schema (or SQLite file) reached through two spellings of its URL."""

    dialect: str
    schema: str | None
    urls: tuple[str, str]  # 127.0.0.1 and localhost; a file and a symlink to it


@pytest.fixture(params=DIALECTS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    dialect = request.param
    if dialect == "sqlite":
        real = tmp_path / "trestle.sqlite3"
        alias = tmp_path / "alias"
        alias.mkdir()
        os.symlink(real, alias / "other-name.sqlite3")
        yield Place(dialect, None, (f"sqlite:///{real}", f"sqlite:///{alias}/other-name.sqlite3"))
        return
    url = MARIADB_URL if dialect == "mariadb" else POSTGRES_URL
    schema = f"feed_o{uuid.uuid4().hex[:10]}"
    yield Place(dialect, schema, (url, url.replace("127.0.0.1", "localhost")))
    with server_engine(dialect).begin() as conn:
        if dialect == "mariadb":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema}`")
        else:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def feed_settings(place: Place, feed: str, url: str) -> Settings:
    """One deployment's settings for one feed (a second deployment, or a copy of the
    first with another feed name: no configuration check sees both)."""
    prefix = f"FEED_{feed.upper()}_"
    environ = {"TRESTLE_FEEDS": feed, f"{prefix}DATABASE_URL": url,
               f"{prefix}TRESTLE_CLIENT_ID": feed, f"{prefix}TRESTLE_CLIENT_SECRET": "s"}
    if place.schema:
        environ[f"{prefix}DATABASE_SCHEMA"] = place.schema
    return load_feeds(environ, env_file=None)[feed]


def everything(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table in the store's schema (what a refused feed must not touch)."""
    inspector = sa.inspect(store.engine)
    rows: dict[str, list[tuple[object, ...]]] = {}
    with store.engine.connect() as conn:
        for name in sorted(inspector.get_table_names(schema=store.schema)):
            table = sa.Table(name, sa.MetaData(schema=store.schema), autoload_with=conn)
            rows[name] = sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
            rows[name + " columns"] = [(c.name,) for c in table.columns]
    return rows


def test_another_feed_is_refused_a_schema_a_feed_owns_and_writes_nothing(
        place: Place) -> None:
    north = Store.from_settings(feed_settings(place, "north", place.urls[0]))
    south = Store.from_settings(feed_settings(place, "south", place.urls[1]))
    try:
        north.migrate(SMALL_EDMX, ["Property"])
        assert north.upsert("Property", [{"ListingKey": "K1", "City": "Northfield",
                                          "ModificationTimestamp": "2024-01-01T00:00:00Z"}]
                            ).upserted == 1
        north.sync_log.advance_watermark(
            "Property", Watermark.parse("2024-01-01T00:00:00Z", "K1"), run_id="north-run")
        before = everything(north)

        for attempt in (lambda: south.migrate(SMALL_EDMX, ["Property", "Media"]),
                        south.evolve_bookkeeping):  # migrate, and what every run calls
            with pytest.raises(SchemaMismatchError) as refused:
                attempt()
            said = str(refused.value)
            assert "belongs to feed north" in said and "feed south" in said, said
        assert everything(north) == before

        north.migrate(SMALL_EDMX, ["Property", "Media"])  # its owner goes on
        assert [r["City"] for r in north.records("Property")] == ["Northfield"]
    finally:
        north.dispose()
        south.dispose()


def test_a_run_or_reconcile_of_another_feed_is_refused_before_it_takes_a_lock(
        place: Place) -> None:
    """The run's plan takes its lock and opens its sync log row before it creates
    missing tables: the owner is asked first, so neither is written."""
    north = Store.from_settings(feed_settings(place, "north", place.urls[0]))
    south = Store.from_settings(feed_settings(place, "south", place.urls[1]))
    try:
        north.migrate(SMALL_EDMX, ["Property"])
        before = everything(north)
        lock = DatabaseRunLock(south.engine, schema=south.schema)
        with pytest.raises(SchemaMismatchError, match="belongs to feed north"):
            plan_run("Property", store=south, client=None,  # type: ignore[arg-type]
                     lock=lock, lock_ttl_s=60,
                     sizing=WindowSizing(max_records=50, min_records=50, wanted=2),
                     prepare=south.evolve_bookkeeping)
        # Nor a reconcile, whose census of south's feed would soft-delete north's records.
        with pytest.raises(SchemaMismatchError, match="belongs to feed north"):
            reconcile("Property", store=south, client=None,  # type: ignore[arg-type]
                      lock=lock, lock_ttl_s=60)
        assert everything(north) == before
    finally:
        north.dispose()
        south.dispose()


def test_a_database_made_before_is_claimed_by_the_first_feed_that_runs(place: Place) -> None:
    settings = feed_settings(place, "north", place.urls[0])
    unowned = Store.from_url(settings.database_url, schema=place.schema)  # no feed: as before
    north = Store.from_settings(settings)
    south = Store.from_settings(feed_settings(place, "south", place.urls[1]))
    try:
        unowned.migrate(SMALL_EDMX, ["Property"])
        with unowned.engine.begin() as conn:  # the previous version had no etl_owner
            conn.execute(sa.text("DROP TABLE " + (f"{_quoted(unowned, place.schema)}."
                                                  if place.schema else "") + "etl_owner"))
        north.evolve_bookkeeping()  # a run of north: etl_owner made, the schema claimed
        with north.engine.connect() as conn:
            owner = conn.execute(sa.text("SELECT feed, claimed_at FROM " + (
                f"{_quoted(north, place.schema)}." if place.schema else "") + "etl_owner")
            ).one()
        assert owner[0] == "north"
        with pytest.raises(SchemaMismatchError):
            south.evolve_bookkeeping()
    finally:
        for store in (unowned, north, south):
            store.dispose()


def _quoted(store: Store, schema: str | None) -> str:
    return store.engine.dialect.identifier_preparer.quote_schema(schema or "")


def test_127_0_0_1_and_localhost_are_one_server_to_the_configuration_check() -> None:
    environ = {"TRESTLE_FEEDS": "north,south",
               "FEED_NORTH_DATABASE_URL": "mysql+pymysql://etl@127.0.0.1:3306/trestle",
               "FEED_SOUTH_DATABASE_URL": "mysql+pymysql://etl@localhost/trestle",
               "DATABASE_SCHEMA": "shared"}
    for feed in ("north", "south"):
        environ[f"FEED_{feed.upper()}_TRESTLE_CLIENT_ID"] = feed
        environ[f"FEED_{feed.upper()}_TRESTLE_CLIENT_SECRET"] = "s"
    with pytest.raises(ConfigurationError, match="same place"):
        load_feeds(environ, env_file=None)

