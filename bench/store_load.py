"""Benchmark: wide Property records into MariaDB — the loader against its alternatives.

Generates N Property records from trestle-2019.xml with every field at its declared maximum
(about 210 KB of JSON each) and loads them into a fresh database per method:

  loader    the store's path: batched, guarded multi-row INSERT … ON DUPLICATE KEY UPDATE
  row       row-by-row: the same guarded upsert, one record per statement and transaction
  loaddata  LOAD DATA LOCAL INFILE into an equivalent table (same layout), one file and
            one transaction per batch; no guard, no upsert: the bulk-load ceiling
  staging   LOAD DATA LOCAL INFILE into a staging table, then one guarded
            INSERT … SELECT … ON DUPLICATE KEY UPDATE per batch

Every method starts from the same Python records and includes validation and the
record-to-row transform, so the numbers compare the ways of writing, end to end to
committed rows. For `loaddata`, the time in the LOAD DATA statements alone is shown too.

    python -m bench.store_load                       # 50,000 records, all four methods
    python -m bench.store_load --records 5000 --methods loader,loaddata
    python -m bench.store_load --shape typical       # feed-shaped records (~3 KB)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.wide_records import typical_records, wide_records
from tests.wide_metadata import trestle_metadata_xml
from trestle_tasks.store.engine import create_store_engine
from trestle_tasks.store.loader import STAGING, RecordLoader
from trestle_tasks.store.migrate import migrate
from trestle_tasks.store.staging import load_data_statement, write_tsv
from trestle_tasks.store.transform import PreparedRow, RecordTransformer
from trestle_tasks.trestle.metadata import ResourceSpec, ServiceMetadata, parse_metadata

METHODS = ("loader", "row", "loaddata", "staging")
SHAPES = {"max": wide_records, "typical": typical_records}
RECORDS = wide_records  # set by --shape


def run_loader(engine: Engine, schema: str, spec: ResourceSpec, count: int,
               batch_size: int) -> dict[str, float]:
    loader = RecordLoader.open(engine, spec.name, schema=schema, batch_size=batch_size)
    result = loader.load(RECORDS(spec, count))
    assert (result.loaded, result.rejected) == (count, 0), result.rejections[:1]
    return {"statements": result.statements}


def run_row_by_row(engine: Engine, schema: str, spec: ResourceSpec, count: int,
                   batch_size: int) -> dict[str, float]:
    loader = RecordLoader.open(engine, spec.name, schema=schema, batch_size=1)
    result = loader.load(RECORDS(spec, count))
    assert (result.loaded, result.rejected) == (count, 0)
    return {"statements": result.statements}


def run_staging(engine: Engine, schema: str, spec: ResourceSpec, count: int,
                batch_size: int) -> dict[str, float]:
    loader = RecordLoader.open(engine, spec.name, schema=schema, batch_size=batch_size,
                               method=STAGING)
    result = loader.load(RECORDS(spec, count))
    assert (result.loaded, result.rejected) == (count, 0)
    return {"statements": result.statements}


def run_load_data(engine: Engine, schema: str, spec: ResourceSpec, count: int,
                  batch_size: int) -> dict[str, float]:
    loader = RecordLoader.open(engine, spec.name, schema=schema)
    layout = loader.layout
    transformer = RecordTransformer(layout)
    preparer = engine.dialect.identifier_preparer
    table = preparer.format_table(layout.table)
    in_statements = 0.0
    records = RECORDS(spec, count)
    with tempfile.TemporaryDirectory(prefix="bench-loaddata-") as directory:
        path = os.path.join(directory, "batch.tsv")
        done = 0
        while done < count:
            now = datetime.now(UTC)
            rows = []
            for _ in range(min(batch_size, count - done)):
                row = transformer.prepare(next(records), now)
                assert isinstance(row, PreparedRow)
                rows.append(row.values)
            columns = list(rows[0])
            with open(path, "w", encoding="utf-8", newline="\n") as out:
                write_tsv(rows, columns, out)
            started = time.perf_counter()
            with engine.begin() as conn:
                conn.exec_driver_sql(load_data_statement(path, table, columns, preparer))
                assert not conn.exec_driver_sql("SELECT @@warning_count").scalar()
            in_statements += time.perf_counter() - started
            done += len(rows)
    return {"statements": -(-count // batch_size), "load_data_s": in_statements}


RUNNERS: dict[str, Callable[..., dict[str, float]]] = {
    "loader": run_loader, "row": run_row_by_row, "loaddata": run_load_data,
    "staging": run_staging,
}


def count_rows(engine: Engine, schema: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{schema}`.`property`").scalar())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--row-records", type=int, default=None,
                        help="records for the row-by-row method (default: --records)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--url", default=os.environ.get(
        "BENCH_DATABASE_URL", "mysql+pymysql://root@127.0.0.1:3306/test"))
    parser.add_argument("--metadata", type=Path, default=None,
                        help="an EDMX file; default: the tests' generated 588-field "
                             "Trestle-like metadata")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="max",
                        help="max: every field at its maximum (default); typical: feed-like")
    args = parser.parse_args(argv)
    global RECORDS
    RECORDS = SHAPES[args.shape]

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods: {', '.join(sorted(unknown))}")
    metadata: ServiceMetadata = parse_metadata(
        args.metadata.read_bytes() if args.metadata else trestle_metadata_xml())
    spec = metadata.resource("Property")
    engine = create_store_engine(args.url, local_infile=True, pool_size=2)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT VERSION()").scalar()
    sample = RecordTransformer(_layout_for(spec)).prepare(
        next(RECORDS(spec, 1)), datetime.now(UTC))
    assert isinstance(sample, PreparedRow)
    shape = "at maximum length" if args.shape == "max" else "declared, about 1 in 5 present"
    print(f"server {version}; {len(spec.fields)} Property fields {shape}, "
          f"{sample.size / 1024:.1f} KB of JSON per record; batch size {args.batch_size}",
          flush=True)

    rates: dict[str, float] = {}
    for method in methods:
        count = args.row_records if method == "row" and args.row_records else args.records
        schema = f"bench_store_{method}_{os.getpid()}"
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
        try:
            migrate(engine, metadata, ["Property"], schema=schema)
            started = time.perf_counter()
            extra = RUNNERS[method](engine, schema, spec, count, args.batch_size)
            elapsed = time.perf_counter() - started
            stored = count_rows(engine, schema)
            assert stored == count, f"{method}: {stored} rows stored, expected {count}"
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema}`")
        rates[method] = count / elapsed
        line = (f"{method:>9}: {count:>7,} records in {elapsed:8.1f} s = "
                f"{rates[method]:8.1f} records/s ({rates[method] * sample.size / 2**20:6.1f} "
                f"MB/s of JSON), {int(extra['statements']):,} upsert/load statements")
        if "load_data_s" in extra:
            line += (f"; LOAD DATA statements alone {extra['load_data_s']:.1f} s = "
                     f"{count / extra['load_data_s']:.1f} records/s")
        print(line, flush=True)

    if "loader" in rates:
        if "row" in rates:
            ratio = rates["loader"] / rates["row"]
            verdict = "meets" if ratio >= 10 else "misses"
            print(f"loader / row-by-row = {ratio:.2f}x (target >= 10x: {verdict})")
        if "loaddata" in rates:
            ratio = rates["loaddata"] / rates["loader"]
            verdict = "meets" if ratio <= 1.5 else "misses"
            print(f"LOAD DATA / loader = {ratio:.2f}x (target <= 1.5x: {verdict})")
        if "staging" in rates:
            print(f"staging / loader = {rates['staging'] / rates['loader']:.2f}x")
    engine.dispose()
    return 0


def _layout_for(spec: ResourceSpec):  # type: ignore[no-untyped-def]
    from trestle_tasks.store.schema import plan_layout

    return plan_layout(spec)


if __name__ == "__main__":
    sys.exit(main())
