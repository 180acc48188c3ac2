"""The typed view per resource: `<table>_fields`, one column per `$metadata` field.

The table keeps a few typed columns and the record as JSON text (schema.py says why); the
view gives a user every declared field as a column under its RESO name, in the SQL type
`schema.sql_type` gives it, over the live rows (`deleted_at IS NULL`; deleted rows are in
the table). A field with a typed column is read from the column, so a filter on it uses
its index; every other field is read from `etl_record` with the database's own JSON
functions and converted the way the loader converts a typed column:

- decimals from the number's own digits (CAST of the JSON text, never through a double);
- timestamps to UTC, truncated to microseconds (the seventh digit dropped, never rounded),
  the offset applied by arithmetic so any year works;
- multi-valued fields (IsFlags sent comma-separated, Collection(...) sent as arrays) and
  GeoJSON as JSON text, one form for both spellings of a multi-select;
- strings unescaped, exactly as sent.

A view has no row-size limit, so all 602 fields of Trestle's Property fit on MariaDB.
`migrate` recreates the view from the metadata it applies, so a field that leaves
`$metadata` leaves the view and the stored rows are untouched. On PostgreSQL a small SQL
function converts timestamps (`etl_utc_timestamp`), so the value is extracted once.
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from trestle_tasks.edm.metadata import FieldSpec
from trestle_tasks.store.naming import (
    DELETED_COLUMN,
    MAX_IDENTIFIER,
    RECORD_COLUMN,
    assign_column_names,
    hashed_identifier,
)
from trestle_tasks.store.schema import ResourceLayout, sql_type
from trestle_tasks.store.types import is_mysql

VIEW_SUFFIX = "_fields"
PG_TIMESTAMP_FUNCTION = "etl_utc_timestamp"
_PLAIN_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRING_KINDS = ("string", "enum", "guid", "time", "duration", "binary")
# What ODataTimestamp.parse accepts (its `strip()` aside): 0-7 digits, Z or an offset.
_PG_TIMESTAMP_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                         r"(\.[0-9]{1,7})?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


def view_name(table: str) -> str:
    name = f"{table}{VIEW_SUFFIX}"
    return name if len(name) <= MAX_IDENTIFIER else hashed_identifier(name).lower()


def view_fields(layout: ResourceLayout) -> list[FieldSpec]:
    """The declared fields the view shows, key first, in `$metadata` order."""
    key = layout.key_field.name
    return [layout.key_field, *(f for f in layout.spec.fields if f.name != key)]


def view_columns(layout: ResourceLayout) -> dict[str, str]:
    """Field name -> view column: the RESO name itself unless no database could take it
    (over 63 characters, punctuation, equal to another when case is ignored); a column
    given before (`layout.view_taken`) is kept."""
    fields = [f.name for f in view_fields(layout)]
    present = set(fields)
    taken = {f: c for f, c in layout.view_taken.items() if f in present}
    return {f: c for f, c in assign_column_names(fields, taken=taken, reserved=()).items()
            if f in present}


def view_table(layout: ResourceLayout, metadata: sa.MetaData | None = None) -> sa.Table:
    """The view as a SQLAlchemy Table (never created: for typed reads in Python)."""
    metadata = metadata if metadata is not None else sa.MetaData(schema=layout.schema)
    names = view_columns(layout)
    return sa.Table(view_name(layout.table_name), metadata, *(
        sa.Column(names[f.name], sql_type(f, is_key=f.name == layout.key_field.name))
        for f in view_fields(layout)))


def select_sql(layout: ResourceLayout, dialect: Dialect, *, from_columns: bool = True,
               live_only: bool = True) -> str:
    """The view's SELECT. `from_columns=False` reads every field from the document, even
    those with a typed column (the tests compare the two)."""
    preparer = dialect.identifier_preparer
    names = view_columns(layout)
    key = layout.key_field.name
    items: list[str] = []
    for spec in view_fields(layout):
        column = layout.columns.get(spec.name)
        if column is not None and (from_columns or spec.name == key):
            expression = f"t.{preparer.quote(column)}"
        else:
            expression = document_expression(
                spec, dialect, f"t.{preparer.quote(RECORD_COLUMN)}", layout.schema)
        items.append(f"{expression} AS {preparer.quote(names[spec.name])}")
    where = f" WHERE t.{preparer.quote(DELETED_COLUMN)} IS NULL" if live_only else ""
    # Identifiers quoted by the dialect, literals from $metadata quoted by _sql_string.
    table = preparer.format_table(layout.table)
    return f"SELECT {', '.join(items)} FROM {table} t{where}"  # noqa: S608


def replace_view(conn: Connection, layout: ResourceLayout) -> str:
    """Create or recreate the resource's view; returns its name."""
    dialect = conn.dialect
    name = view_name(layout.table_name)
    qualified = _qualified(dialect, layout.schema, name)
    body = select_sql(layout, dialect)
    if dialect.name == "postgresql":
        ensure_pg_functions(conn, layout.schema)
    if is_mysql(dialect):
        # SQL SECURITY INVOKER: a reader needs rights on the table, like a direct query.
        conn.exec_driver_sql(f"CREATE OR REPLACE SQL SECURITY INVOKER VIEW {qualified} AS "
                             + _escape_percent(body, dialect))
        return name
    # PostgreSQL cannot drop or rename a view's columns in place; SQLite has no REPLACE.
    conn.exec_driver_sql(f"DROP VIEW IF EXISTS {qualified}")
    conn.exec_driver_sql(f"CREATE VIEW {qualified} AS {_escape_percent(body, dialect)}")
    return name


def drop_view(conn: Connection, schema: str | None, table: str) -> None:
    qualified = _qualified(conn.dialect, schema, view_name(table))
    conn.exec_driver_sql(f"DROP VIEW IF EXISTS {qualified}")


def _qualified(dialect: Dialect, schema: str | None, name: str) -> str:
    preparer = dialect.identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted


def _escape_percent(sql: str, dialect: Dialect) -> str:
    # exec_driver_sql hands the text to a DBAPI that uses %-placeholders (pymysql, psycopg)
    # and turns `%%` back into `%`; sqlite3's are `?`, so there `%%` would stay doubled
    # (a field `Pct%Done` read as `Pct%%Done`: a column of NULLs).
    if dialect.paramstyle in ("format", "pyformat"):
        return sql.replace("%", "%%")
    return sql


def ensure_pg_functions(conn: Connection, schema: str | None) -> None:
    """The timestamp conversion as a SQL function: its argument (the JSON extraction) is
    evaluated once, where an inline expression would extract it four times.

    IMMUTABLE is true for the inputs it converts: each carries its own offset (Z or
    ±HH:MM), so neither TimeZone nor DateStyle changes the result."""
    name = _qualified(conn.dialect, schema, PG_TIMESTAMP_FUNCTION)
    body = (f"SELECT CASE WHEN v ~ '{_PG_TIMESTAMP_PATTERN}' THEN (left(v, 19) || '.' || "  # noqa: S608
            r"rpad(coalesce(substring(v from '\.([0-9]+)'), ''), 6, '0') || "
            "substring(v from '([Zz]|[+-][0-9]{2}:[0-9]{2})$'))::timestamptz END")
    conn.exec_driver_sql(f"CREATE OR REPLACE FUNCTION {name}(v text) RETURNS timestamptz "
                         f"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ {body} $$")


# --- one field from the document ------------------------------------------------------


def document_expression(spec: FieldSpec, dialect: Dialect, record: str,
                        schema: str | None = None) -> str:
    """SQL reading `spec` from the JSON text `record`, converted to its declared type
    (`schema`: where PostgreSQL's conversion function lives)."""
    if is_mysql(dialect):
        return _mysql_expression(spec, record)
    if dialect.name == "postgresql":
        function = _qualified(dialect, schema, PG_TIMESTAMP_FUNCTION)
        return _pg_expression(spec, record, function)
    return _sqlite_expression(spec, record)


def _kind(spec: FieldSpec) -> str:
    if spec.is_multi_valued:
        return "multi"
    if spec.kind in ("geography", "complex"):
        return "object"
    if spec.kind in _STRING_KINDS:
        return "string"
    return spec.kind


def _sql_string(text: str, *, mysql: bool = False) -> str:
    if mysql and "\\" in text:
        # A backslash means different things with and without NO_BACKSLASH_ESCAPES (the
        # store's sessions set it, a user's may not): spell it as CHAR(92).
        pieces = [_sql_string(part) for part in text.split("\\")]
        return "CONCAT(" + ", CHAR(92 USING utf8mb4), ".join(pieces) + ")"
    return "'" + text.replace("'", "''") + "'"


def _json_path(name: str) -> str:
    # Non-ASCII as itself: MariaDB's JSON_EXTRACT does not decode a `\u00e9` in a path
    # (JSON_VALUE does), so an escaped `Café` found nothing in every non-string field.
    return f"$.{name}" if _PLAIN_PATH.match(name) else "$." + json.dumps(name,
                                                                       ensure_ascii=False)


def _split_flags(quoted: str, *, concat: bool) -> str:
    """A JSON array text from the JSON string literal `quoted` of "A,B,C": each comma
    becomes `","` (a comma is never part of an escape) and empty parts are dropped, as the
    loader's conversion drops them."""
    parts = f"REPLACE({quoted}, ',', '\",\"')"
    array = f"CONCAT('[', {parts}, ']')" if concat else f"('[' || {parts} || ']')"
    return f"REPLACE(REPLACE(REPLACE({array}, ',\"\"', ''), '[\"\",', '['), '[\"\"]', '[]')"


def _mysql_member(record: str, name: str) -> str:
    """The member `name` of the JSON object `record` as JSON text, found by its key among
    JSON_KEYS (compared byte for byte) and taken by position from `$.*` (both in the
    document's order). For names a path cannot reach: MariaDB reads `$."-x"`, a key
    starting with `-`, as nothing (JSON_EXTRACT, JSON_VALUE alike), so the field's
    column was all NULLs."""
    return (f"(SELECT JSON_EXTRACT(JSON_EXTRACT({record}, '$.*'), "  # noqa: S608
            "CONCAT('$[', k.i - 1, ']')) "
            f"FROM JSON_TABLE(JSON_KEYS({record}), '$[*]' COLUMNS (i FOR ORDINALITY, "
            "k TEXT CHARACTER SET utf8mb4 PATH '$')) AS k "
            f"WHERE k.k COLLATE utf8mb4_bin = {_sql_string(name, mysql=True)} LIMIT 1)")


def _mysql_expression(spec: FieldSpec, record: str) -> str:
    if spec.name.startswith("-"):
        raw = _mysql_member(record, spec.name)
        return _mysql_conversion(spec, record=raw, path="'$'", raw=raw)
    path = _sql_string(_json_path(spec.name), mysql=True)
    return _mysql_conversion(spec, record=record, path=path,
                             raw=f"JSON_EXTRACT({record}, {path})")


def _mysql_conversion(spec: FieldSpec, *, record: str, path: str, raw: str) -> str:
    """The field at `path` of the JSON text `record` (`raw`: its JSON text) in its type."""
    value = f"JSON_VALUE({record}, {path})"
    kind = _kind(spec)
    if kind == "multi":
        flags = _split_flags(f"JSON_QUOTE({value})", concat=True)
        return (f"(CASE JSON_TYPE({raw}) WHEN 'STRING' THEN {flags} "
                f"WHEN 'ARRAY' THEN {raw} END)")
    if kind == "object":
        return f"JSON_QUERY({record}, {path})"
    if kind == "string":
        return value
    if kind == "integer":
        return f"CAST({value} AS SIGNED)"
    if kind == "decimal":
        precision = min(spec.precision if spec.precision is not None else 65, 65)
        scale = min(spec.scale if spec.scale is not None else 30, 30, precision)
        return f"CAST({value} AS DECIMAL({precision},{scale}))"
    if kind == "float":
        return f"CAST({value} AS DOUBLE)"
    if kind == "boolean":
        return f"(CASE {raw} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)"
    if kind == "date":
        return f"CAST({value} AS DATE)"
    if kind == "datetime":
        # Local time with six digits, then minus the offset in minutes (CONVERT_TZ gives
        # up outside TIMESTAMP's 1970-2038 range).
        digits = f"RPAD(COALESCE(REGEXP_SUBSTR({value}, '(?<=[.])[0-9]+'), ''), 6, '0')"
        local = f"CAST(CONCAT(LEFT({value}, 19), '.', {digits}) AS DATETIME(6))"
        offset = (f"(CASE WHEN RIGHT({value}, 1) IN ('Z', 'z') THEN 0 ELSE "
                  f"IF(SUBSTR({value}, -6, 1) = '-', -1, 1) * "
                  f"(SUBSTR({value}, -5, 2) * 60 + SUBSTR({value}, -2, 2)) END)")
        return f"({local} - INTERVAL {offset} MINUTE)"
    # stream, unknown: a string as it is, anything else as JSON text
    return (f"(CASE JSON_TYPE({raw}) WHEN 'STRING' THEN {value} WHEN 'NULL' THEN NULL "
            f"ELSE {raw} END)")


def _pg_expression(spec: FieldSpec, record: str, timestamp_function: str) -> str:
    name = "'" + spec.name.replace("'", "''") + "'"
    node = f"({record}::json -> {name})"
    value = f"({record}::json ->> {name})"
    typeof = f"json_typeof({node})"
    kind = _kind(spec)
    if kind == "multi":
        return (f"(CASE {typeof} WHEN 'string' THEN "
                f"to_json(array_remove(string_to_array({value}, ','), ''))::text "
                f"WHEN 'array' THEN {node}::text END)")
    if kind == "object":
        return f"(CASE WHEN {typeof} IN ('object', 'array') THEN {node}::text END)"
    if kind == "string":
        return value
    number = f"(CASE WHEN {typeof} = 'number' THEN {value}::numeric END)"
    if kind == "integer":
        target = {"Edm.Int64": "bigint", "Edm.Int32": "integer"}.get(spec.type, "smallint")
        return f"{number}::{target}"
    if kind == "decimal":
        # Unconstrained numeric: the digits as sent, whatever the declared scale.
        return number
    if kind == "float":
        return f"(CASE WHEN {typeof} = 'number' THEN {value}::double precision END)"
    if kind == "boolean":
        return f"(CASE WHEN {typeof} = 'boolean' THEN {value}::boolean END)"
    if kind == "date":
        return (f"(CASE WHEN {value} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' "
                f"THEN {value}::date END)")
    if kind == "datetime":
        return f"{timestamp_function}({value})"
    return (f"(CASE {typeof} WHEN 'string' THEN {value} WHEN 'null' THEN NULL "
            f"ELSE {node}::text END)")


def _sqlite_member(record: str, name: str, column: str) -> str:
    """`column` (value or type) of the member `name` of the JSON object `record`, found
    by json_each's decoded key: a JSON path cannot name every key on SQLite, which
    compares a path's label with the key's text as stored, escapes and all (`Café`
    spelled `Caf\\u00e9` in the path, or a `"`, which ends a quoted label, found
    nothing: a column of NULLs)."""
    return (f"(SELECT j.{column} FROM json_each({record}) AS j "  # noqa: S608
            f"WHERE j.key = {_sql_string(name)})")


def _sqlite_expression(spec: FieldSpec, record: str) -> str:
    if _PLAIN_PATH.match(spec.name):
        path = _sql_string(_json_path(spec.name))
        value = f"({record} ->> {path})"
        node = f"({record} -> {path})"
        typeof = f"json_type({record}, {path})"
    else:
        # json_each's value is what `->>` gives, and the JSON text itself for an object or
        # an array, the only nodes read as text below (numbers are cast, as from `->`).
        value = node = _sqlite_member(record, spec.name, "value")
        typeof = _sqlite_member(record, spec.name, "type")
    kind = _kind(spec)
    if kind == "multi":
        flags = _split_flags(f"json_quote({value})", concat=False)
        return f"(CASE {typeof} WHEN 'text' THEN {flags} WHEN 'array' THEN {node} END)"
    if kind == "object":
        return f"(CASE WHEN {typeof} IN ('object', 'array') THEN {node} END)"
    if kind in ("string", "integer", "boolean", "date"):
        return value
    if kind == "decimal":
        # `->` gives the number's own text; NUMERIC as in the typed column (SQLite has
        # no exact decimals: 15 significant digits, the document keeps them all).
        return f"(CASE WHEN {typeof} IN ('integer', 'real') THEN CAST({node} AS NUMERIC) END)"
    if kind == "float":
        return f"(CASE WHEN {typeof} IN ('integer', 'real') THEN CAST({node} AS REAL) END)"
    if kind == "datetime":
        # 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC, the form SQLAlchemy stores DateTime in.
        zone = (f"(CASE WHEN substr({value}, -1) IN ('Z', 'z') THEN '' "
                f"ELSE substr({value}, -6) END)")
        fraction = (f"(CASE WHEN substr({value}, 20, 1) = '.' THEN substr({value}, 21, "
                    f"length({value}) - 20 - (CASE WHEN substr({value}, -1) IN ('Z', 'z') "
                    f"THEN 1 ELSE 6 END)) ELSE '' END)")
        return (f"(datetime(substr({value}, 1, 19) || {zone}) || '.' || "
                f"substr({fraction} || '000000', 1, 6))")
    return f"(CASE {typeof} WHEN 'text' THEN {value} WHEN 'null' THEN NULL ELSE {node} END)"

