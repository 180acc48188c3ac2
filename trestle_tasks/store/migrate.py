"""Create or evolve the store's tables from `$metadata`. Idempotent: run it any time.

- The schema the tables go in (a PostgreSQL schema, a MySQL/MariaDB database: one per
  feed, see feeds.py) is created when missing.
- Bookkeeping tables are created when missing.
- A resource table is created with its typed columns and indexes; an existing one gets
  only what is missing (ALTER TABLE … ADD COLUMN, CREATE INDEX): never a rebuild, never a
  dropped column, never a lost row.
- A field that appears in `$metadata` later needs no DDL unless it is one of the typed
  columns: it is recorded in etl_field_map and records carry it in the document. A typed
  column added later is backfilled from the documents already stored, so it also covers
  rows loaded before the metadata declared the field.
- A field that leaves `$metadata` keeps its column (marked undeclared in the map) and its
  values in the documents.
- A typed column that is neither a default (schema.COMMON_FIELDS) nor asked for by
  `promote` any more is dropped with its index (a demotion); the documents keep the values.
- Each resource's typed view (`<table>_fields`, views.py) is recreated from the metadata
  applied, so it always has one column per declared field.

DDL is not transactional on MySQL, so each step is safe to repeat: a migrate interrupted
half-way is completed by the next one. The catalog rows are written after the DDL, so a
loader never expects a column that is not there yet. Run it while workers are idle when it
adds typed columns: a loader opened before the change writes rows without them until it
is reopened.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateColumn

from trestle_tasks.core.errors import MetadataError, StoreError
from trestle_tasks.edm.metadata import ResourceSpec, ServiceMetadata
from trestle_tasks.store.catalog import COLUMN, DOCUMENT, field_rows, read_catalog, upsert_rows
from trestle_tasks.store.dberrors import classify
from trestle_tasks.store.jsontext import decode_json
from trestle_tasks.store.naming import RECORD_COLUMN, SHAPE_COLUMN, table_name
from trestle_tasks.store.ownership import check_resource_names
from trestle_tasks.store.schema import (
    ResourceLayout,
    bookkeeping,
    plan_layout,
    promoted_fields,
    shape_column_free,
)
from trestle_tasks.store.transform import field_check, field_converter
from trestle_tasks.store.types import is_mysql
from trestle_tasks.store.views import drop_view, replace_view, view_columns

log = logging.getLogger(__name__)

BACKFILL_BATCH = 500


@dataclass
class MigrationReport:
    created_tables: list[str] = field(default_factory=list)
    added_columns: dict[str, list[str]] = field(default_factory=dict)  # table -> columns
    added_indexes: dict[str, list[str]] = field(default_factory=dict)
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)  # demoted fields
    new_fields: dict[str, list[str]] = field(default_factory=dict)  # newly declared
    undeclared_fields: dict[str, list[str]] = field(default_factory=dict)  # left $metadata
    document_only: dict[str, list[str]] = field(default_factory=dict)  # over the budget
    backfilled_rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    missing_resources: list[str] = field(default_factory=list)  # asked for, not declared
    views: list[str] = field(default_factory=list)  # recreated every time: not a change
    # view -> {field: view column} for the fields whose view column is not their own
    # name (etl_field_map.view_column has them all): said every time, like `views`.
    renamed_view_columns: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.created_tables or self.added_columns or self.added_indexes
                    or self.dropped_columns or self.new_fields or self.undeclared_fields
                    or self.backfilled_rows)


def migrate(
    engine: Engine,
    metadata: ServiceMetadata,
    resources: Iterable[str] | None = None,
    *,
    schema: str | None = None,
    promote: Mapping[str, Sequence[str]] | None = None,
    table_prefix: str = "",
) -> MigrationReport:
    """Create or evolve tables for `resources` (default: every entity set declared).

    `promote` adds typed columns per resource, beyond the defaults in schema.COMMON_FIELDS.
    A resource asked for but not declared is listed in `missing_resources`, not an error:
    a feed may not license every resource.
    """
    report = MigrationReport()
    evolve_bookkeeping(engine, schema, report)
    wanted = list(resources) if resources is not None else list(metadata.resources)
    # Before any table is created: two resources must never share a table or a view.
    check_resource_names(engine, [r for r in wanted if r in metadata.resources], schema,
                         table_prefix)
    for name in wanted:
        spec = metadata.resources.get(name)
        if spec is None:
            report.missing_resources.append(name)
            continue
        if len(spec.key) != 1:
            raise MetadataError(f"{name}: composite keys are not supported", resource=name)
        _migrate_resource(engine, spec, schema, (promote or {}).get(name, ()),
                          table_prefix, report)
    return report


def evolve_bookkeeping(engine: Engine, schema: str | None = None,
                       report: MigrationReport | None = None) -> list[str]:
    """Create the bookkeeping tables, or add the columns a newer version gave them (the
    sync log's retry and 429 counters, say); returns `table.column` for each one added.

    Cheap when nothing is missing (one inspection), so a sync calls it before each run and
    a database upgraded without `migrate` still works; so does a feed's schema that is
    not there yet (`ensure_schema`)."""
    ensure_schema(engine, schema)
    tables = bookkeeping(schema)
    tables["etl_resource"].metadata.create_all(engine, checkfirst=True)
    inspector = sa.inspect(engine)
    added: list[str] = []
    for table in tables.values():
        present = {c["name"].lower() for c in inspector.get_columns(table.name, schema=schema)}
        missing = [c for c in table.columns if c.name.lower() not in present]
        if not missing:
            continue
        preparer = engine.dialect.identifier_preparer
        with engine.begin() as conn:
            for column in missing:
                ddl = CreateColumn(column).compile(dialect=engine.dialect)
                conn.exec_driver_sql(
                    f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {ddl}")
                added.append(f"{table.name}.{column.name}")
                if report is not None:
                    report.added_columns.setdefault(table.name, []).append(column.name)
    if added:
        log.info("bookkeeping tables evolved: added %s", ", ".join(added))
    return added


def add_shape_columns(engine: Engine, schema: str | None, resources: Iterable[str]
                      ) -> list[str]:
    """Give resource tables made before etl_shape came that column (a nullable column at
    the end: instant on MariaDB 10.3+ and PostgreSQL 11+), so a database upgraded without
    `migrate` also stores compact documents; returns the tables changed. Cheap when none
    lacks it (the catalog remembers tables seen with it)."""
    changed: list[str] = []
    for resource in resources:
        with engine.connect() as conn:
            layout = read_catalog(conn, resource, schema).layout
        if layout.shapes or not shape_column_free(layout.columns, layout.retired):
            continue
        table = replace(layout, shapes=True).table  # the column as build_table makes it
        ddl = CreateColumn(table.c[SHAPE_COLUMN]).compile(dialect=engine.dialect)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"ALTER TABLE {engine.dialect.identifier_preparer.format_table(table)} "
                f"ADD COLUMN {ddl}")
        changed.append(table.name)
    if changed:
        log.info("added %s to %s", SHAPE_COLUMN, ", ".join(changed))
    return changed


def ensure_schema(engine: Engine, schema: str | None) -> bool:
    """Create `schema` when it does not exist (PostgreSQL: CREATE SCHEMA, MySQL/MariaDB:
    CREATE DATABASE on the same server); True if this call created it.

    Raises StoreError saying what to run when the database user may not create it."""
    if schema is None or engine.dialect.name == "sqlite":
        return False  # SQLite: a schema is an ATTACHed file, never created here
    if sa.inspect(engine).has_schema(schema):
        return False
    preparer = engine.dialect.identifier_preparer
    quoted = preparer.quote_schema(schema)
    mysql = is_mysql(engine.dialect)
    ddl = (f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4" if mysql
           else f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)
    except sa.exc.DBAPIError as error:
        # Another process may have created it a moment earlier (PostgreSQL's IF NOT
        # EXISTS can still collide on the catalog's unique index).
        if sa.inspect(engine).has_schema(schema):
            return False
        if classify(error) == "retry":
            raise  # the connection, not the permission: the caller's retries apply
        user = engine.url.username or "<user>"
        if mysql:
            kind = "database"
            grant = (f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4; GRANT ALL PRIVILEGES "
                     f"ON {quoted}.* TO '{user}'@'%'")
        else:
            kind = "schema"
            grant = f"CREATE SCHEMA {quoted} AUTHORIZATION {preparer.quote(user)}"
        # The server's own words (PyMySQL's args are (code, text); psycopg's the text).
        said = getattr(error.orig, "args", ()) or (error.orig,)
        reason = str(said[-1]).strip().splitlines()[0] if error.orig else type(error).__name__
        raise StoreError(
            f"cannot create the {kind} {schema} the tables go in: the database user "
            f"{user} may not ({reason}). Create it once as an administrator ({grant}), "
            "then run migrate again", schema=schema) from error
    log.info("created %s %s", "database" if mysql else "schema", schema)
    return True


# What the databases say when another process created the same table a moment earlier
# (or, on SQLite, is creating it now: a transaction that read the schema cannot upgrade to
# writing while another writes, and fails at once instead of waiting for the busy timeout).
# What a database says when another process ran the same DDL at the same moment.
# "tuple concurrently updated": PostgreSQL, two CREATE OR REPLACE FUNCTION of the views'
# timestamp function (or GRANTs) committing together.
_ALREADY_CREATED = ("already exists", "duplicate key value", "duplicate column",
                    "database is locked", "tuple concurrently updated")


def racing_other_migrations(migrate: Callable[[], object], attempts: int = 5) -> None:
    """Run an idempotent migration, again if another process created a shared bookkeeping
    table (etl_field_map, etl_run_lock, …) between our check and our CREATE.

    On a new database the first runs of every resource, and their run locks, start
    together; each run lock serialises its own resource only.
    """
    for attempt in range(attempts):
        try:
            migrate()
            return
        except Exception as error:  # raw DBAPIError, or the store's own error chained to one
            text = f"{error} {error.__cause__}".lower()
            if attempt + 1 == attempts or not any(s in text for s in _ALREADY_CREATED):
                raise
            log.info("another process created tables at the same time; checking again")
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))


def _migrate_resource(engine: Engine, spec: ResourceSpec, schema: str | None,
                      promote: Sequence[str], table_prefix: str,
                      report: MigrationReport) -> None:
    tables = bookkeeping(schema)
    resources, field_map = tables["etl_resource"], tables["etl_field_map"]
    with engine.connect() as conn:
        head = conn.execute(
            sa.select(resources).where(resources.c.resource == spec.name)
        ).mappings().first()
        previous = conn.execute(
            sa.select(field_map).where(field_map.c.resource == spec.name)
        ).mappings().all()
    existing_columns = {r["field_name"]: r["column_name"] for r in previous if r["column_name"]}
    was_declared = {r["field_name"] for r in previous if r["declared"]}
    name = head["table_name"] if head else table_name(spec.name, table_prefix)
    wanted = set(promoted_fields(spec, promote))
    demoted = {f: c for f, c in existing_columns.items()
               if spec.has_field(f) and f not in wanted}
    layout = plan_layout(
        spec, existing={f: c for f, c in existing_columns.items() if f not in demoted},
        promote=promote, schema=schema, table=name,
        view_taken={r["field_name"]: r["view_column"] for r in previous
                    if r["declared"] and r["view_column"]})
    over_budget = [f for f in promote if spec.has_field(f) and f not in wanted]
    if over_budget:
        report.document_only[spec.name] = over_budget

    if demoted and head is not None:
        _drop_columns(engine, layout, sorted(demoted.values()), report)
    new_columns = _create_or_evolve(engine, layout, report)

    now = datetime.now(UTC)
    declared = {f.name for f in spec.fields} | spec.navigation_names
    with engine.begin() as conn:
        upsert_rows(conn, resources, [{
            "resource": spec.name, "table_name": layout.table_name,
            "entity_type": spec.entity_type, "key_field": spec.key_field.name,
            "version_field": layout.version_field, "migrated_at": now,
        }], update=("table_name", "entity_type", "key_field", "version_field", "migrated_at"))
        rows = field_rows(layout, now)
        upsert_rows(conn, field_map, rows, update=[
            c for c in rows[0] if c not in ("resource", "field_name", "first_seen_at")
        ])
        gone = sorted(was_declared - declared)
        if gone:
            conn.execute(
                sa.update(field_map)
                .where(field_map.c.resource == spec.name, field_map.c.field_name.in_(gone))
                .values(declared=False, storage=sa.case(
                    (field_map.c.column_name.is_(None), DOCUMENT), else_=COLUMN),
                    view_column=None, updated_at=now)
            )
            report.undeclared_fields[spec.name] = gone
    fresh = [f.name for f in spec.fields if f.name not in was_declared]
    if fresh and head is not None:
        report.new_fields[spec.name] = fresh
    if new_columns and head is not None:
        count = backfill(engine, layout, new_columns)
        if count:
            report.backfilled_rows[layout.table_name] = count
    with engine.begin() as conn:
        view = replace_view(conn, layout)
    report.views.append(view)
    renamed = {f: c for f, c in view_columns(layout).items() if f != c}
    if renamed:
        report.renamed_view_columns[view] = renamed


def _drop_columns(engine: Engine, layout: ResourceLayout, columns: Sequence[str],
                  report: MigrationReport) -> None:
    """Demote: drop the typed columns (and their indexes) of fields no longer promoted.

    The view goes first (PostgreSQL and SQLite refuse to drop a column a view reads; it
    is recreated at the end of the migration), then the indexes (SQLite refuses to drop
    an indexed column). The stored documents are not touched."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(layout.table_name, schema=layout.schema):
        return
    present = {c["name"].lower() for c in inspector.get_columns(layout.table_name,
                                                                 schema=layout.schema)}
    doomed = [c for c in columns if c.lower() in present]
    if not doomed:
        return
    lowered = {c.lower() for c in doomed}
    indexes = [i["name"] for i in inspector.get_indexes(layout.table_name, schema=layout.schema)
               if i["name"] and {str(c).lower() for c in i["column_names"]} & lowered]
    preparer = engine.dialect.identifier_preparer
    table = preparer.format_table(layout.table)
    with engine.begin() as conn:
        drop_view(conn, layout.schema, layout.table_name)
        for index in indexes:
            if is_mysql(engine.dialect):
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP INDEX {preparer.quote(index)}")
            else:
                qualified = (f"{preparer.quote_schema(layout.schema)}.{preparer.quote(index)}"
                             if layout.schema else preparer.quote(index))
                conn.exec_driver_sql(f"DROP INDEX {qualified}")
        for column in doomed:
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {preparer.quote(column)}")
    report.dropped_columns.setdefault(layout.table_name, []).extend(doomed)


def _create_or_evolve(engine: Engine, layout: ResourceLayout,
                      report: MigrationReport) -> dict[str, str]:
    """Create the table, or add its missing columns and indexes; returns the typed columns
    added to an existing table (field -> column), which need a backfill."""
    table = layout.table
    inspector = sa.inspect(engine)
    if not inspector.has_table(table.name, schema=layout.schema):
        table.create(engine, checkfirst=True)
        report.created_tables.append(table.name)
        return {}
    present = {c["name"].lower() for c in inspector.get_columns(table.name, schema=layout.schema)}
    added: dict[str, str] = {}
    by_column = {c: f for f, c in layout.columns.items()}
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for column in table.columns:
            if column.name.lower() in present:
                continue
            ddl = CreateColumn(column).compile(dialect=engine.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {ddl}"
            )
            report.added_columns.setdefault(table.name, []).append(column.name)
            if column.name in by_column:
                added[by_column[column.name]] = column.name
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes(table.name,
                                                                  schema=layout.schema)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(engine, checkfirst=False)
            report.added_indexes.setdefault(table.name, []).append(str(index.name))
    return added


def backfill(engine: Engine, layout: ResourceLayout, columns: Mapping[str, str]) -> int:
    """Fill newly added typed columns from the stored documents; returns rows updated.

    Values the typed column cannot hold (the field was undeclared when they were loaded,
    so never validated) are left NULL; the document keeps them.
    """
    table = layout.table
    key = table.c[layout.key_column]
    plans = [
        (name, column, json.dumps(name, ensure_ascii=False) + ":",
         field_check(spec), field_converter(spec))
        for name, column in columns.items() if (spec := layout.spec.field(name)) is not None
    ]
    if not plans:
        return 0
    update = (
        sa.update(table)
        .where(key == sa.bindparam("_key"))
        .values({column: sa.bindparam(f"_v_{i}") for i, (_n, column, *_r) in enumerate(plans)})
    )
    updated = 0
    last: Any = None
    while True:
        query = sa.select(key, table.c[RECORD_COLUMN]).order_by(key).limit(BACKFILL_BATCH)
        if last is not None:
            query = query.where(key > last)
        with engine.connect() as conn:
            page = conn.execute(query).all()
        if not page:
            return updated
        last = page[-1][0]
        changes: list[dict[str, Any]] = []
        for record_key, text in page:
            if not any(marker in text for _n, _c, marker, *_r in plans):
                continue
            record = decode_json(text)
            change: dict[str, Any] = {"_key": record_key}
            found = False
            for i, (name, _column, _marker, check, convert) in enumerate(plans):
                value = record.get(name)
                ok = value is not None and check(value) is None
                change[f"_v_{i}"] = convert(value) if ok else None
                found = found or ok
            if found:
                changes.append(change)
        if changes:
            with engine.begin() as conn:
                conn.execute(update, changes)
            updated += len(changes)
