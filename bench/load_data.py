"""LOAD DATA LOCAL INFILE for `bench.store_load`: the bulk-load ceiling (`loaddata`) and
the staging-table path (`staging`) the loader is measured against. Not part of the
package: on wide rows the staging path writes every byte twice and is slower than the
loader's multi-row upsert (see the figures in docs/benchmarks.md).

The staging path keeps the guarantees of the loader's path:

- rows are validated and deduplicated before they are written to the file;
- the staging table is a per-connection TEMPORARY table emptied with DELETE (TRUNCATE
  would commit), so the load and the guarded upsert share one transaction;
- LOAD DATA LOCAL turns conversion errors into warnings even in strict mode, so any
  warning fails the batch instead of letting a truncated value through;
- the guard is the same expression as the loader's (`guarded_assignments`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from trestle_tasks.core.errors import StoreError
from trestle_tasks.store.loader import guarded_assignments
from trestle_tasks.store.schema import ResourceLayout

_TSV_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0"))


def tsv_field(value: Any) -> str:
    """One value in LOAD DATA's default format (tab-separated, backslash escapes, \\N)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        for char, escaped in _TSV_ESCAPES:
            if char in value:
                value = value.replace(char, escaped)
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # MySQL DATETIME holds UTC without an offset
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date | int | Decimal | float):
        return str(value)
    raise TypeError(f"no TSV form for {type(value).__name__}")


def write_tsv(rows: Iterable[dict[str, Any]], columns: Sequence[str], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write("\t".join([tsv_field(row[c]) for c in columns]))
        out.write("\n")
        count += 1
    return count


def staging_table(layout: ResourceLayout) -> sa.Table:
    """A TEMPORARY twin of the resource table: same columns, primary key, no other index."""
    metadata = sa.MetaData()
    columns = [sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
                         autoincrement=False) for c in layout.table.columns]
    return sa.Table(f"{layout.table_name}_staging", metadata, *columns,
                    prefixes=["TEMPORARY"], mysql_engine="InnoDB", mysql_charset="utf8mb4")


def load_data_statement(path: str, table: str, columns: Sequence[str],
                        preparer: Any) -> str:
    # '' is a quote in every sql_mode; the path (from mkstemp) has no backslashes.
    literal = path.replace("'", "''")
    names = ", ".join(preparer.quote(c) for c in columns)
    # The separators as hex literals: under NO_BACKSLASH_ESCAPES (which the store's
    # sessions use) '\\t' is two characters and the default ESCAPED BY is empty.
    return (f"LOAD DATA LOCAL INFILE '{literal}' INTO TABLE {table} CHARACTER SET utf8mb4 "
            f"FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' "
            f"({names})")


def stage_and_upsert(conn: sa.Connection, layout: ResourceLayout,
                     rows: Sequence[dict[str, Any]], directory: str | None = None) -> None:
    """Inside the caller's transaction: load `rows` into the staging table, upsert them."""
    if not rows:
        return
    staging = staging_table(layout)
    preparer = conn.dialect.identifier_preparer
    conn.execute(sa.schema.CreateTable(staging, if_not_exists=True))
    columns = list(rows[0])
    handle, path = tempfile.mkstemp(prefix="trestle-stage-", suffix=".tsv", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            write_tsv(rows, columns, out)
        conn.exec_driver_sql(load_data_statement(path, preparer.format_table(staging),
                                                 columns, preparer))
        warnings = conn.exec_driver_sql("SELECT @@warning_count").scalar()
        if warnings:
            raise StoreError(f"LOAD DATA reported {warnings} warning(s); the batch is rolled "
                             "back rather than risk a truncated value", verdict="fatal")
        target = layout.table
        insert = mysql.insert(target).from_select(
            columns, sa.select(*[staging.c[c] for c in columns]))
        conn.execute(insert.on_duplicate_key_update(
            guarded_assignments(layout, insert.inserted, columns)))
        conn.execute(sa.delete(staging))
    finally:
        os.unlink(path)
