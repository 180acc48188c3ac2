"""Benchmark: a typical filtered query on Property through the typed view, before and after
promoting the filtered field, and on the default typed columns.

Fills a fresh database with N Property records from the simulator's generator (the
project's default metadata, realistic fill; each record goes through the JSON the feed
would send and back, decimals exact, then through `Store.upsert`), then times, each
`--repeat` times after one warm-up run, rows fetched:

  json      LivingArea, a field that is only in the JSON document (read through the view
            with the database's JSON functions); with City = ..., which has an index, and
            alone (the whole table is read)
  promoted  the same queries after STORE_INDEXED_FIELDS=Property.LivingArea, applied the
            way a sync applies it (`Store.apply_promotions`: column and index added and
            filled from the stored documents)
  typed     City, ListPrice and BedroomsTotal, typed columns by default; through the view
            and on the table itself

For each query it prints the median and minimum time, the rows returned and the index the
database's EXPLAIN chooses. The tables are ANALYZEd after loading and after promoting.

    python -m bench.typed_query                                  # 100,000 rows, MariaDB
    python -m bench.typed_query --records 20000 --url sqlite://
    python -m bench.typed_query --url mariadb --url postgresql --url sqlite

`--url` names a server (a database on it is created and dropped) or `sqlite://` (a
temporary file); `mariadb` and `postgresql` stand for the local servers the tests use.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from trestle_simulator.config import SimulatorConfig
from trestle_simulator.default_metadata import default_metadata_xml
from trestle_simulator.feed import Feed
from trestle_tasks.store.engine import create_store_engine
from trestle_tasks.store.store import Store

SERVERS = {
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
}
FIELD = "LivingArea"
CITY = "Denver"


@dataclass(frozen=True)
class Query:
    name: str
    sql: str  # {view}, {table} and identifiers in {Name} form are filled per dialect


QUERIES = {
    "field_city": Query(
        f"{FIELD} 1500-2000 and City (view)",
        "SELECT {ListingKey}, {ListPrice} FROM {view} "
        "WHERE {City} = :city AND {LivingArea} BETWEEN 1500 AND 2000"),
    "field_only": Query(
        f"{FIELD} 1500-1510 alone (view)",
        "SELECT {ListingKey}, {ListPrice} FROM {view} "
        "WHERE {LivingArea} BETWEEN 1500 AND 1510"),
    "typed_view": Query(
        "City, ListPrice, BedroomsTotal (view)",
        "SELECT {ListingKey}, {ListPrice} FROM {view} "
        "WHERE {City} = :city AND {ListPrice} BETWEEN 300000 AND 600000 "
        "AND {BedroomsTotal} >= 3"),
    "typed_table": Query(
        "City, ListPrice, BedroomsTotal (table)",
        "SELECT {ListingKey}, {ListPrice} FROM {table} "
        "WHERE {City} = :city AND {ListPrice} BETWEEN 300000 AND 600000 "
        "AND {BedroomsTotal} >= 3 AND {deleted_at} IS NULL"),
}
IDENTIFIERS = ("ListingKey", "ListPrice", "City", "LivingArea", "BedroomsTotal", "deleted_at")


@dataclass
class Timing:
    label: str
    median_ms: float
    min_ms: float
    rows: int
    plan: str


# -- records ------------------------------------------------------------------------------

def property_records(count: int) -> Iterator[dict[str, Any]]:
    """The simulator's Property records as the client receives them (exact decimals)."""
    feed = Feed(SimulatorConfig(records=count))
    for listing in range(count):
        record = feed.factory.property(listing)
        yield json.loads(json.dumps(record, ensure_ascii=False), parse_float=Decimal)


# -- databases ----------------------------------------------------------------------------

@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url` (or a temporary SQLite file)."""
    url = SERVERS.get(url, url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-typed-") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        return
    name = f"bench_typed_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    mysql = parsed.get_backend_name() in ("mysql", "mariadb")
    quoted = f"`{name}`" if mysql else f'"{name}"'
    with admin.connect() as conn:
        suffix = " CHARACTER SET utf8mb4" if mysql else ""
        conn.exec_driver_sql(f"CREATE DATABASE {quoted}{suffix}")
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = "" if mysql else " WITH (FORCE)"
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
        admin.dispose()


def analyze(engine: Engine, table: str) -> None:
    with engine.begin() as conn:
        quoted = engine.dialect.identifier_preparer.quote(table)
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql(f"ANALYZE TABLE {quoted}").all()
        else:
            conn.exec_driver_sql(f"ANALYZE {quoted}")


def storage(engine: Engine, table: str) -> str:
    """The table's size on disk and the server's page cache, for reading the figures."""
    with engine.connect() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            size = conn.exec_driver_sql(
                "SELECT data_length + index_length FROM information_schema.tables "
                f"WHERE table_schema = DATABASE() AND table_name = '{table}'").scalar()
            cache = conn.exec_driver_sql("SELECT @@innodb_buffer_pool_size").scalar()
            return f"table {int(size) / 2**20:,.0f} MiB, InnoDB buffer pool " \
                   f"{int(cache) / 2**20:,.0f} MiB"
        if engine.dialect.name == "postgresql":
            size = conn.exec_driver_sql(
                f"SELECT pg_total_relation_size('{table}')").scalar()
            cache = conn.exec_driver_sql("SHOW shared_buffers").scalar()
            return f"table {int(size) / 2**20:,.0f} MiB (TOAST included), " \
                   f"shared_buffers {cache}"
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        page_size = conn.exec_driver_sql("PRAGMA page_size").scalar()
        return f"database file {int(pages) * int(page_size) / 2**20:,.0f} MiB"


def server_version(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
        version = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
    return " ".join(version.split()[:2]) if engine.dialect.name == "postgresql" else version


# -- EXPLAIN ------------------------------------------------------------------------------

def chosen_plan(engine: Engine, sql: str, params: dict[str, Any]) -> str:
    """The access path EXPLAIN reports: index names, or a full scan."""
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "sqlite":
            details = [row[-1] for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"),
                                                       params)]
            found = []
            for detail in details:
                index = re.search(r"USING (?:COVERING )?INDEX (\S+)", detail)
                if index:
                    found.append(index.group(1))
                elif detail.startswith("SCAN"):
                    found.append("full scan")
            return ", ".join(found) or "; ".join(details)
        if dialect == "postgresql":
            lines = [row[0] for row in conn.execute(sa.text(f"EXPLAIN {sql}"), params)]
            found = []
            for line in lines:
                index = re.search(r"Index (?:Only )?Scan (?:using|on) (\S+)", line)
                if index:
                    found.append(index.group(1).strip('"'))
                elif "Seq Scan" in line:
                    found.append("full scan")
            return ", ".join(dict.fromkeys(found)) or lines[0].strip()
        result = conn.execute(sa.text(f"EXPLAIN {sql}"), params)
        rows = [dict(row._mapping) for row in result]
    found = []
    for row in rows:
        if row.get("type") == "ALL":
            found.append("full scan")
        elif row.get("key"):
            found.append(f"{row['key']} ({row['type']})")
    return ", ".join(found) or str(rows)


# -- timing -------------------------------------------------------------------------------

def render(engine: Engine, query: Query, table: str, view: str) -> str:
    quote = engine.dialect.identifier_preparer.quote
    names = {name: quote(name) for name in IDENTIFIERS}
    return query.sql.format(view=quote(view), table=quote(table), **names)


def time_query(engine: Engine, query: Query, table: str, view: str, repeat: int,
               label: str) -> Timing:
    sql = render(engine, query, table, view)
    params = {"city": CITY}
    seconds: list[float] = []
    rows = 0
    with engine.connect() as conn:
        statement = sa.text(sql)
        conn.execute(statement, params).all()  # warm-up: pages in the buffer pool
        for _ in range(repeat):
            started = time.perf_counter()
            rows = len(conn.execute(statement, params).all())
            seconds.append(time.perf_counter() - started)
    return Timing(label, statistics.median(seconds) * 1000, min(seconds) * 1000, rows,
                  chosen_plan(engine, sql, params))


def run(url: str, records: int, repeat: int, batch_size: int) -> list[Timing]:
    timings: list[Timing] = []
    with fresh_database(url) as database_url:
        engine = create_store_engine(database_url, pool_size=2)
        try:
            store = Store(engine, batch_size=batch_size)
            store.migrate(default_metadata_xml(), ["Property"])
            print(f"{server_version(engine)}: loading {records:,} Property records ...",
                  flush=True)
            started = time.perf_counter()
            result = store.upsert("Property", property_records(records))
            load_s = time.perf_counter() - started
            assert (result.upserted, result.rejected) == (records, 0), result.rejections[:1]
            table = "property"
            view = store.view_name("Property")
            analyze(engine, table)
            print(f"  loaded in {load_s:.1f} s ({records / load_s:,.0f} records/s); "
                  f"{storage(engine, table)}", flush=True)

            for key in ("field_city", "field_only", "typed_view", "typed_table"):
                timings.append(time_query(engine, QUERIES[key], table, view, repeat,
                                          f"json      {QUERIES[key].name}"
                                          if key.startswith("field") else
                                          f"typed     {QUERIES[key].name}"))
                print(f"  {timings[-1].label}: {timings[-1].median_ms:.1f} ms", flush=True)

            promoting = Store(engine, batch_size=batch_size, promote={"Property": [FIELD]})
            assert promoting.pending_promotions(["Property"]) == ["Property"]
            started = time.perf_counter()
            promoting.apply_promotions(["Property"])
            promote_s = time.perf_counter() - started
            assert promoting.pending_promotions(["Property"]) == []
            analyze(engine, table)
            print(f"  promoted {FIELD} (column + index filled from the documents) in "
                  f"{promote_s:.1f} s", flush=True)
            for key in ("field_city", "field_only"):
                timings.append(time_query(engine, QUERIES[key], table, view, repeat,
                                          f"promoted  {QUERIES[key].name}"))
                print(f"  {timings[-1].label}: {timings[-1].median_ms:.1f} ms", flush=True)
            timings.append(Timing(f"(load {load_s:.1f} s, promote {promote_s:.1f} s)",
                                  0, 0, 0, ""))
        finally:
            engine.dispose()
    return timings


def print_table(title: str, timings: list[Timing], repeat: int) -> None:
    print(f"\n{title}: median and min of {repeat} runs, rows fetched")
    print(f"{'query':<52} {'median ms':>10} {'min ms':>9} {'rows':>6}  EXPLAIN")
    for timing in timings:
        if not timing.plan:
            print(f"  {timing.label}")
            continue
        print(f"{timing.label:<52} {timing.median_ms:>10.1f} {timing.min_ms:>9.1f} "
              f"{timing.rows:>6}  {timing.plan}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--url", action="append", default=None,
                        help="a server URL (a fresh database is created and dropped), "
                             "sqlite://, or mariadb / postgresql for the local servers; "
                             "repeatable (default: mariadb)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per query")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    urls = args.url or ["mariadb"]
    results: list[tuple[str, list[Timing]]] = []
    for url in urls:
        timings = run(url, args.records, args.repeat, args.batch_size)
        results.append((make_url(SERVERS.get(url, url)).get_backend_name(), timings))
    for backend, timings in results:
        print_table(f"{backend}, {args.records:,} Property rows, City = {CITY!r}", timings,
                    args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
