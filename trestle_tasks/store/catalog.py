"""The store's own record of what it holds: etl_resource and etl_field_map.

`migrate` writes them from `$metadata`; workers read them back, so loading a batch never
needs the metadata document. etl_field_map has one row per field of a resource: declared
fields (with their Edm type and facets, enough to validate values), navigation
properties, and fields seen in records that the metadata did not declare (kept in the
document). A field with a typed column names it, so every column traces back to a field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from trestle_tasks.core.errors import SchemaMismatchError
from trestle_tasks.edm.metadata import (
    KIND_OF_EDM,
    EnumSpec,
    FieldSpec,
    NavigationSpec,
    ResourceSpec,
)
from trestle_tasks.store.naming import SHAPE_COLUMN
from trestle_tasks.store.schema import (
    FIELD_NAME_CHARS,
    ResourceLayout,
    bookkeeping,
    shape_column_free,
)
from trestle_tasks.store.types import is_mysql, on_conflict_insert
from trestle_tasks.store.views import view_columns

KEY = "key"
COLUMN = "column"
DOCUMENT = "document"
NAVIGATION = "navigation"


@dataclass(frozen=True)
class Catalog:
    """What etl_resource and etl_field_map say about one resource."""

    layout: ResourceLayout
    undeclared: frozenset[str]  # seen in records, not declared: document only


def field_rows(layout: ResourceLayout, now: datetime) -> list[dict[str, Any]]:
    """etl_field_map rows for every declared field and navigation of `layout`."""
    spec = layout.spec
    key = layout.key_field.name
    in_view = view_columns(layout)
    rows: list[dict[str, Any]] = []
    for position, field in enumerate(spec.fields):
        column = layout.columns.get(field.name)
        rows.append({
            "resource": spec.name, "field_name": field.name, "column_name": column,
            "storage": KEY if field.name == key else (COLUMN if column else DOCUMENT),
            "declared": True, "edm_type": field.edm_type, "kind": field.kind,
            "is_collection": field.is_collection,
            "is_flags": bool(field.enum and field.enum.is_flags),
            "max_length": field.max_length, "precision": field.precision,
            "scale": field.scale, "nullable": field.nullable, "position": position,
            "view_column": in_view.get(field.name), "first_seen_at": now, "updated_at": now,
        })
    for position, nav in enumerate(spec.navigations, start=len(spec.fields)):
        rows.append({
            "resource": spec.name, "field_name": nav.name, "column_name": None,
            "storage": NAVIGATION, "declared": True,
            "edm_type": f"Collection({nav.target_type})" if nav.is_collection
            else nav.target_type,
            "kind": "navigation", "is_collection": nav.is_collection, "is_flags": False,
            "max_length": None, "precision": None, "scale": None, "nullable": True,
            "position": position, "view_column": None, "first_seen_at": now,
            "updated_at": now,
        })
    return rows


def read_catalog(conn: sa.Connection, resource: str, schema: str | None = None) -> Catalog:
    """The layout the store uses for `resource`; SchemaMismatchError before migrate."""
    tables = bookkeeping(schema)
    resources, field_map = tables["etl_resource"], tables["etl_field_map"]
    try:
        head = conn.execute(
            sa.select(resources).where(resources.c.resource == resource)
        ).mappings().first()
    except sa.exc.ProgrammingError as exc:
        raise SchemaMismatchError(
            "the store's tables do not exist yet: run `trestle-etl migrate`", resource=resource
        ) from exc
    except sa.exc.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        raise SchemaMismatchError(
            "the store's tables do not exist yet: run `trestle-etl migrate`", resource=resource
        ) from exc
    if head is None:
        raise SchemaMismatchError(
            f"no table for {resource}: run `trestle-etl migrate` (is it in $metadata?)",
            resource=resource,
        )
    # A database not yet upgraded (no migrate or run since view_column came) still reads.
    present = [c for c in field_map.columns
               if c.name != "view_column"
               or _has_column(conn, schema, "etl_field_map", "view_column")]
    rows = conn.execute(
        sa.select(*present).where(field_map.c.resource == resource)
        .order_by(field_map.c.position, field_map.c.field_name)
    ).mappings().all()
    fields: list[FieldSpec] = []
    navigations: list[NavigationSpec] = []
    columns: dict[str, str] = {}
    in_view: dict[str, str] = {}
    retired: dict[str, str] = {}
    undeclared: set[str] = set()
    for row in rows:
        name = row["field_name"]
        if row["storage"] == NAVIGATION:
            if row["declared"]:
                target = row["edm_type"] or ""
                if row["is_collection"] and target.startswith("Collection("):
                    target = target[len("Collection("):-1]
                navigations.append(NavigationSpec(name, target, bool(row["is_collection"])))
            continue
        if not row["declared"]:
            if row["column_name"]:
                retired[name] = row["column_name"]
            undeclared.add(name)
            continue
        fields.append(_field_from_row(row))
        if row["column_name"]:
            columns[name] = row["column_name"]
        if row.get("view_column"):
            in_view[name] = row["view_column"]
    spec = ResourceSpec(
        name=resource, entity_type=head["entity_type"], key=(head["key_field"],),
        fields=tuple(fields), navigations=tuple(navigations),
    )
    key = head["key_field"]
    ordered = {key: columns.pop(key)} if key in columns else {}
    ordered.update(columns)
    shapes = (shape_column_free(ordered, retired)
              and _has_column(conn, schema, head["table_name"], SHAPE_COLUMN))
    layout = ResourceLayout(spec=spec, table_name=head["table_name"], columns=ordered,
                            schema=schema, retired=retired, view_taken=in_view,
                            shapes=shapes)
    return Catalog(layout=layout, undeclared=frozenset(undeclared))


# (database URL, schema, table, column) seen present: a column is never dropped again.
_SEEN_COLUMNS: set[tuple[str, str | None, str, str]] = set()


def _has_column(conn: sa.Connection, schema: str | None, table: str, column: str) -> bool:
    """Whether `table` has `column` (one a newer version added: a database not yet
    upgraded still reads and writes without it); once seen, not inspected again."""
    key = (str(conn.engine.url), schema, table, column)
    if key in _SEEN_COLUMNS:
        return True
    columns = sa.inspect(conn).get_columns(table, schema=schema)
    if any(c["name"].lower() == column for c in columns):
        _SEEN_COLUMNS.add(key)
        return True
    return False


def _field_from_row(row: Any) -> FieldSpec:
    edm_type = row["edm_type"] or "Edm.String"
    element = edm_type[len("Collection("):-1] if row["is_collection"] else edm_type
    kind = row["kind"] or KIND_OF_EDM.get(element, "unknown")
    enum = EnumSpec(qualified_name=element, members=(), is_flags=bool(row["is_flags"])) \
        if kind == "enum" else None
    return FieldSpec(
        name=row["field_name"], type=element, kind=kind,
        is_collection=bool(row["is_collection"]), nullable=bool(row["nullable"]),
        max_length=row["max_length"], precision=row["precision"], scale=row["scale"],
        enum=enum,
    )


def upsert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]],
                update: Iterable[str] = ()) -> None:
    """INSERT rows; where the primary key exists, set the `update` columns (or leave the
    row alone when there are none). One form for all three dialects."""
    if not rows:
        return
    update = list(update)
    keys = [c.name for c in table.primary_key.columns]
    if is_mysql(conn.dialect):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        assignments = {c: stmt.inserted[c] for c in update} or {keys[0]: table.c[keys[0]]}
        conn.execute(stmt.on_duplicate_key_update(assignments), rows)
        return
    insert = on_conflict_insert(table, conn.dialect)
    if update:
        insert = insert.on_conflict_do_update(
            index_elements=keys, set_={c: insert.excluded[c] for c in update})
    else:
        insert = insert.on_conflict_do_nothing(index_elements=keys)
    conn.execute(insert, rows)


def track_undeclared(conn: sa.Connection, resource: str, names: Iterable[str],
                     now: datetime, schema: str | None = None) -> list[str]:
    """Record fields seen in records before `$metadata` declares them; returns those kept.

    Names longer than the map's column are stored in the document but cannot be tracked.
    """
    kept = [n for n in names if len(n) <= FIELD_NAME_CHARS]
    field_map = bookkeeping(schema)["etl_field_map"]
    upsert_rows(conn, field_map, [
        {"resource": resource, "field_name": name, "column_name": None, "storage": DOCUMENT,
         "declared": False, "edm_type": None, "kind": None, "is_collection": False,
         "is_flags": False, "max_length": None, "precision": None, "scale": None,
         "nullable": True, "position": None, "first_seen_at": now, "updated_at": now}
        for name in kept
    ])
    return kept
