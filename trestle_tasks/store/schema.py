"""Resource specs to tables: the wide-row layout, column types and indexes.

The layout: wide rows, since one column per field of a Trestle Property (588 fields) does
not fit a MariaDB row (ERROR 1118, row size too large). One table per resource:

- the key, as primary key, under its RESO name;
- a few commonly queried fields as typed, indexed columns under their RESO names
  (for Property, what listings are most often searched by; the key, ModificationTimestamp
  and obvious links for the others; extendable with `promote=`);
- `etl_record`: the record as JSON text, every field exactly as the server sent it
  (decimals as exact JSON numbers, timestamps as the server's strings), except that its
  null members are left out: a field absent from the document is null;
- `etl_shape`: when nulls were left out, the name of the record's key sequence in
  `etl_record_shape`, from which export restores the record exactly (shapes.py);
- `etl_mod_ticks`: ModificationTimestamp as 100 ns ticks, the full seven digits, compared
  inside the upsert so an older version never overwrites a newer one;
- `deleted_at` (soft delete) and `etl_loaded_at`.

Why not one column per field: Trestle's Property has 602 declared fields, many of them
VARCHAR(1024..8000); one column each fails on MariaDB with ERROR 1118 as VARCHARs and again
as TEXT. A layout with a bounded number of typed columns holds any metadata, of any width,
today and after the feed adds fields: a new field needs no DDL at all (it lands in the
document and in `etl_field_map`), and export is exact because the document and its
shape are the record. Fields outside the typed set stay queryable through the document (MySQL
`JSON_VALUE(etl_record, '$.Field')`, PostgreSQL `etl_record::jsonb ->> 'Field'`, SQLite
`json_extract`), and promoting one later adds its column and backfills it from the document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import sqlalchemy as sa

from trestle_tasks.edm.metadata import FieldSpec, ResourceSpec
from trestle_tasks.store.naming import (
    DELETED_COLUMN,
    LOADED_COLUMN,
    MAX_IDENTIFIER,
    RECORD_COLUMN,
    SHAPE_COLUMN,
    VERSION_COLUMN,
    assign_column_names,
    hashed_identifier,
    table_name,
)
from trestle_tasks.store.shapes import SHAPE_CHARS
from trestle_tasks.store.types import (
    ExactDecimal,
    KeyString,
    LongText,
    MediumString,
    UTCDateTime,
)

VERSION_FIELD = "ModificationTimestamp"

# The fields listings are most often queried by, and their equivalents for the other
# resources.
COMMON_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Property": (
        "ListingKey", "ListingId", "StandardStatus", "ListPrice", "City", "PostalCode",
        "BedroomsTotal", "BathroomsTotalInteger", "ModificationTimestamp",
        "PhotosChangeTimestamp", "PhotosCount", "PropertyType", "StateOrProvince",
        "ListAgentKey", "ListOfficeKey",
    ),
    "Member": (
        "MemberKey", "MemberMlsId", "MemberStatus", "MemberFirstName", "MemberLastName",
        "OfficeKey", "ModificationTimestamp",
    ),
    "Office": (
        "OfficeKey", "OfficeMlsId", "OfficeName", "OfficeStatus", "MainOfficeKey",
        "ModificationTimestamp",
    ),
    "OpenHouse": (
        "OpenHouseKey", "ListingKey", "ListingId", "OpenHouseDate", "OpenHouseStartTime",
        "OpenHouseEndTime", "OpenHouseStatus", "ModificationTimestamp",
    ),
    "Media": (
        "MediaKey", "ResourceRecordKey", "ResourceName", "Order", "MediaCategory",
        "MediaModificationTimestamp", "ModificationTimestamp",
    ),
}
# Links worth a typed, indexed column wherever a resource declares them.
LINK_FIELDS = ("ListingKey", "ResourceRecordKey", "MemberKey", "OfficeKey")

# A typed VARCHAR is indexable whole up to 768 four-byte characters (InnoDB's 3072 bytes).
INDEXABLE_CHARS = 768
# Unbounded keys are stored up to this many characters (the PK must be indexable).
UNBOUNDED_KEY_CHARS = 512
# Single-valued enumeration members fit this (OData identifiers are at most 128).
ENUM_CHARS = 255
# Inline bytes the typed columns may take on MySQL: far under InnoDB's ~8 KB per row, so
# ERROR 1118 cannot happen whatever `promote=` asks for; fields beyond stay in the document.
TYPED_COLUMNS_BYTE_BUDGET = 4000


def promoted_fields(spec: ResourceSpec, extra: Iterable[str] = ()) -> list[str]:
    """Fields that get typed columns: key first, then ModificationTimestamp, then the rest."""
    wanted = [spec.key_field.name]
    if spec.has_field(VERSION_FIELD):
        wanted.append(VERSION_FIELD)
    defaults = COMMON_FIELDS.get(spec.name) or (
        tuple(f for f in LINK_FIELDS if f != spec.key_field.name)
    )
    for name in (*defaults, *extra):
        if name not in wanted and spec.has_field(name):
            wanted.append(name)
    budget = TYPED_COLUMNS_BYTE_BUDGET
    chosen: list[str] = []
    for name in wanted:
        cost = inline_bytes(spec.declared_field(name))
        if chosen and cost > budget:
            continue  # stays in the document only; reported by migrate
        budget -= cost
        chosen.append(name)
    return chosen


def inline_bytes(spec: FieldSpec) -> int:
    """Worst-case bytes a typed column of this field takes inside an InnoDB row."""
    column_type = sql_type(spec)
    if isinstance(column_type, sa.String) and column_type.length:
        return 4 * column_type.length + 2
    if isinstance(column_type, MediumString | LongText | sa.Text):
        return 40  # off-page: a pointer and a prefix
    return 16


def sql_type(spec: FieldSpec, *, is_key: bool = False) -> sa.types.TypeEngine[Any]:
    """The SQL type of a typed column for this field (see the module docstring)."""
    if is_key:
        if spec.kind == "integer" and not spec.is_collection:
            return sa.BigInteger()
        return KeyString(min(spec.max_length or UNBOUNDED_KEY_CHARS, INDEXABLE_CHARS))
    if spec.is_multi_valued or spec.kind in ("geography", "complex", "stream", "unknown"):
        return LongText()  # JSON text: arrays, GeoJSON, nested objects
    kind = spec.kind
    if kind == "string":
        length = spec.max_length
        if length is None:
            return LongText()
        return sa.String(length) if length <= INDEXABLE_CHARS else MediumString(length)
    if kind == "enum":
        return sa.String(ENUM_CHARS)
    if kind == "integer":
        if spec.type == "Edm.Int64":
            return sa.BigInteger()
        if spec.type == "Edm.Int32":
            return sa.Integer()
        return sa.SmallInteger()
    if kind == "decimal":
        return ExactDecimal(spec.precision, spec.scale)
    if kind == "float":
        return sa.Double()
    if kind == "boolean":
        return sa.Boolean(create_constraint=False)
    if kind == "date":
        return sa.Date()
    if kind == "datetime":
        return UTCDateTime()
    if kind == "guid":
        return sa.String(36)
    if kind in ("time", "duration"):
        return sa.String(64)
    return LongText()  # binary (base64 text) and anything else


def is_indexable(column_type: sa.types.TypeEngine[Any]) -> bool:
    return not isinstance(column_type, LongText | MediumString | sa.Text)


def index_name(table: str, column: str) -> str:
    name = f"ix_{table}_{column}"
    return name if len(name) <= MAX_IDENTIFIER else hashed_identifier(name)


@dataclass(frozen=True)
class ResourceLayout:
    """How one resource is stored: its table, typed columns and the fields behind them."""

    spec: ResourceSpec
    table_name: str
    columns: Mapping[str, str]  # field name -> column name, for the typed columns only
    schema: str | None = None
    retired: Mapping[str, str] = field(default_factory=dict)  # columns of undeclared fields
    # View columns given before (etl_field_map.view_column): kept, so a field's column in
    # `<table>_fields` never changes when $metadata reorders or adds a case twin.
    view_taken: Mapping[str, str] = field(default_factory=dict)
    # Documents stored without their nulls, with the record's shape in etl_shape
    # (shapes.py). False for a table made before the column came and not yet evolved.
    shapes: bool = True

    @property
    def resource(self) -> str:
        return self.spec.name

    @property
    def key_field(self) -> FieldSpec:
        return self.spec.key_field

    @property
    def key_column(self) -> str:
        return self.columns[self.key_field.name]

    @property
    def version_field(self) -> str | None:
        return VERSION_FIELD if self.spec.has_field(VERSION_FIELD) else None

    @cached_property
    def table(self) -> sa.Table:
        return build_table(self, sa.MetaData(schema=self.schema))


def plan_layout(
    spec: ResourceSpec,
    *,
    existing: Mapping[str, str] | None = None,
    promote: Iterable[str] = (),
    schema: str | None = None,
    table: str | None = None,
    view_taken: Mapping[str, str] | None = None,
) -> ResourceLayout:
    """The layout for `spec`, keeping every column `existing` already assigned (and every
    view column in `view_taken`)."""
    spec.key_field  # noqa: B018 - raises MetadataError for composite keys
    existing = dict(existing or {})
    wanted = promoted_fields(spec, promote)
    kept = [f for f in existing if spec.has_field(f)]
    names = assign_column_names([*kept, *wanted], taken=existing)
    declared_columns = {f: names[f] for f in dict.fromkeys([*wanted, *kept])}
    retired = {f: c for f, c in existing.items() if not spec.has_field(f)}
    return ResourceLayout(
        spec=spec,
        table_name=table or table_name(spec.name),
        columns=declared_columns,
        schema=schema,
        retired=retired,
        view_taken={f: c for f, c in (view_taken or {}).items() if spec.has_field(f)},
        shapes=shape_column_free(declared_columns, retired),
    )


def shape_column_free(columns: Mapping[str, str], retired: Mapping[str, str]) -> bool:
    """Whether etl_shape is not a field's column: a table whose field took that name
    before the store reserved it keeps its documents whole."""
    taken = {c.lower() for c in (*columns.values(), *retired.values())}
    return SHAPE_COLUMN not in taken


def build_table(layout: ResourceLayout, metadata: sa.MetaData) -> sa.Table:
    spec = layout.spec
    key = layout.key_field
    columns: list[sa.Column[Any]] = [
        sa.Column(layout.key_column, sql_type(key, is_key=True), primary_key=True,
                  autoincrement=False)
    ]
    indexes: list[sa.Index] = []
    typed = [(f, c) for f, c in layout.columns.items() if f != key.name]
    for field_name, column_name in typed:
        column_type = sql_type(spec.declared_field(field_name))
        columns.append(sa.Column(column_name, column_type, nullable=True))
    for column_name in layout.retired.values():
        columns.append(sa.Column(column_name, LongText(), nullable=True))
    columns += [
        sa.Column(RECORD_COLUMN, LongText(), nullable=False),
        sa.Column(VERSION_COLUMN, sa.BigInteger(), nullable=True),
        sa.Column(DELETED_COLUMN, UTCDateTime(), nullable=True),
        sa.Column(LOADED_COLUMN, UTCDateTime(), nullable=False),
    ]
    if layout.shapes:
        columns.append(sa.Column(SHAPE_COLUMN, sa.String(SHAPE_CHARS), nullable=True))
    table = sa.Table(
        layout.table_name, metadata, *columns,
        mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_row_format="DYNAMIC",
    )
    for _field_name, column_name in typed:
        if is_indexable(table.c[column_name].type):
            indexes.append(sa.Index(index_name(layout.table_name, column_name),
                                    table.c[column_name]))
    indexes.append(sa.Index(index_name(layout.table_name, VERSION_COLUMN),
                            table.c[VERSION_COLUMN]))
    return table


# --- bookkeeping tables ------------------------------------------------------------------

RUN_ID_CHARS = 64
RESOURCE_CHARS = 128
FIELD_NAME_CHARS = 512
WINDOW_ID_CHARS = 128


# api_retries, api_rate_limited (429s received) and api_bytes (response bytes as sent on
# the wire) came later: `evolve_bookkeeping` in migrate.py adds them to older databases.
SYNC_LOG_COUNTERS = ("records_fetched", "records_upserted", "records_rejected",
                     "records_deleted", "records_duplicate", "api_requests", "api_retries",
                     "api_rate_limited", "api_bytes")
WINDOW_COUNTERS = ("records_fetched", "records_upserted", "records_rejected",
                   "records_duplicate", "api_requests", "api_retries", "api_rate_limited",
                   "api_bytes")


@lru_cache(maxsize=64)
def bookkeeping(schema: str | None = None) -> dict[str, sa.Table]:
    """The bookkeeping tables in `schema` (one MetaData per schema, built once)."""
    return bookkeeping_tables(sa.MetaData(schema=schema))


def bookkeeping_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """etl_resource, etl_field_map, etl_sync_log, etl_sync_window, etl_watermark,
    etl_rejects, etl_run_lock, etl_owner, etl_record_shape."""
    # Dialect options, for Table(**kw: Any): as dict[str, str] mypy matches them to its
    # typed keywords (schema, quote, …) too.
    opts: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
    resource = sa.Table(
        "etl_resource", metadata,
        sa.Column("resource", KeyString(RESOURCE_CHARS), primary_key=True),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(255), nullable=False),
        sa.Column("key_field", sa.String(FIELD_NAME_CHARS), nullable=False),
        sa.Column("version_field", sa.String(FIELD_NAME_CHARS), nullable=True),
        sa.Column("migrated_at", UTCDateTime(), nullable=False),
        **opts,
    )
    field_map = sa.Table(
        "etl_field_map", metadata,
        sa.Column("resource", KeyString(RESOURCE_CHARS), primary_key=True),
        sa.Column("field_name", KeyString(FIELD_NAME_CHARS), primary_key=True),
        sa.Column("column_name", sa.String(64), nullable=True),  # NULL: document only
        sa.Column("storage", sa.String(16), nullable=False),  # key|column|document|navigation
        sa.Column("declared", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("edm_type", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("is_collection", sa.Boolean(create_constraint=False), nullable=False,
                  default=False),
        sa.Column("is_flags", sa.Boolean(create_constraint=False), nullable=False,
                  default=False),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.Column("precision", sa.Integer(), nullable=True),
        sa.Column("scale", sa.Integer(), nullable=True),
        sa.Column("nullable", sa.Boolean(create_constraint=False), nullable=False,
                  default=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        # The field's column in the view `<table>_fields`: its own name, or a shortened one
        # when no database could take that (over 63 characters, punctuation, a case twin
        # such as HOAName/HoaName). NULL: not in the view (undeclared, navigation). Added
        # later: `evolve_bookkeeping` adds it to older databases.
        sa.Column("view_column", sa.String(64), nullable=True),
        **opts,
    )
    def counters(*names: str) -> list[sa.Column[Any]]:
        return [sa.Column(name, sa.BigInteger(), nullable=False, default=0, server_default="0")
                for name in names]

    sync_log = sa.Table(
        "etl_sync_log", metadata,
        sa.Column("run_id", sa.String(RUN_ID_CHARS), primary_key=True),
        sa.Column("resource", sa.String(RESOURCE_CHARS), primary_key=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        *counters(*SYNC_LOG_COUNTERS),
        sa.Column("windows_total", sa.Integer(), nullable=True),
        sa.Column("windows_ok", sa.Integer(), nullable=False, default=0, server_default="0"),
        sa.Column("windows_failed", sa.Integer(), nullable=False, default=0,
                  server_default="0"),
        sa.Column("watermark_from", sa.String(40), nullable=True),
        sa.Column("watermark_to", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),  # JSON object
        sa.Index("ix_etl_sync_log_started_at", "started_at"),
        sa.Index("ix_etl_sync_log_resource_status", "resource", "status"),
        **opts,
    )
    window = sa.Table(
        "etl_sync_window", metadata,
        sa.Column("run_id", sa.String(RUN_ID_CHARS), primary_key=True),
        sa.Column("resource", sa.String(RESOURCE_CHARS), primary_key=True),
        sa.Column("window_id", sa.String(WINDOW_ID_CHARS), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, default=1, server_default="1"),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        *counters(*WINDOW_COUNTERS),
        sa.Column("error", sa.Text(), nullable=True),
        # The window's plan and its lease (sync/ledger.py), added later: a Celery
        # message carries one window, and finalize reads the rest of the plan from here.
        # `token` grows with each dispatch, so only the newest delivery may run the window;
        # `heartbeat_at` (the database's clock) shows its worker alive; `crashes` counts
        # deliveries that died without finishing; `outcome` is the WindowOutcome as JSON;
        # `lanes`, the ticks where the window is cut into stretches walked at once.
        sa.Column("window_index", sa.Integer(), nullable=True),
        sa.Column("lower_ticks", sa.BigInteger(), nullable=True),
        sa.Column("upper_ticks", sa.BigInteger(), nullable=True),
        sa.Column("expected", sa.BigInteger(), nullable=True),
        sa.Column("lanes", sa.Text(), nullable=True),  # JSON list of inner boundaries
        sa.Column("token", sa.Integer(), nullable=False, default=0, server_default="0"),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False, default=0, server_default="0"),
        sa.Column("crashes", sa.Integer(), nullable=False, default=0, server_default="0"),
        sa.Column("outcome", sa.Text(), nullable=True),
        **opts,
    )
    watermark = sa.Table(
        "etl_watermark", metadata,
        sa.Column("resource", KeyString(RESOURCE_CHARS), primary_key=True),
        sa.Column("ticks", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.String(40), nullable=False),  # the 7-digit wire form
        sa.Column("record_key", KeyString(FIELD_NAME_CHARS), nullable=True),
        sa.Column("run_id", sa.String(RUN_ID_CHARS), nullable=True),
        sa.Column("fence", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        **opts,
    )
    rejects = sa.Table(
        "etl_rejects", metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(RUN_ID_CHARS), nullable=True),
        sa.Column("window_id", sa.String(WINDOW_ID_CHARS), nullable=True),
        sa.Column("resource", sa.String(RESOURCE_CHARS), nullable=False),
        sa.Column("record_key", sa.String(FIELD_NAME_CHARS), nullable=True),
        sa.Column("field", sa.String(FIELD_NAME_CHARS), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("raw_record", LongText(), nullable=True),
        sa.Column("rejected_at", UTCDateTime(), nullable=False),
        sa.Index("ix_etl_rejects_run", "run_id", "resource"),
        sa.Index("ix_etl_rejects_key", "resource", "record_key"),
        **opts,
    )
    # The run lock lives beside the watermark it guards (coordination/db_lock.py): one row
    # per lock name, free when `owner` is NULL or `expires_at` (the database's clock) passed.
    # `fence` only grows, across holders and releases alike. Added later than the others:
    # `evolve_bookkeeping` creates it in older databases.
    run_lock = sa.Table(
        "etl_run_lock", metadata,
        sa.Column("name", KeyString(RESOURCE_CHARS), primary_key=True),
        sa.Column("owner", sa.String(RUN_ID_CHARS), nullable=True),
        sa.Column("fence", sa.BigInteger(), nullable=False, default=0, server_default="0"),
        sa.Column("acquired_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        **opts,
    )
    # The feed the schema belongs to (store/ownership.py): one row, written by the first
    # migrate or run of a feed; another feed is refused. Added later: `evolve_bookkeeping`
    # creates it in older databases, and the next migrate or run claims it.
    owner = sa.Table(
        "etl_owner", metadata,
        sa.Column("name", KeyString(RESOURCE_CHARS), primary_key=True),  # always "feed"
        sa.Column("feed", sa.String(RESOURCE_CHARS), nullable=False),
        sa.Column("credential", sa.String(64), nullable=True),  # its fingerprint, no secret
        sa.Column("base_url", sa.String(1024), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        **opts,
    )
    # The key sequences of records stored without their nulls (shapes.py), each named by
    # its digest: written by any loader at once (insert if absent), read by export.
    # Added later: `evolve_bookkeeping` creates it in older databases.
    record_shape = sa.Table(
        "etl_record_shape", metadata,
        sa.Column("shape", KeyString(SHAPE_CHARS), primary_key=True),
        sa.Column("names", LongText(), nullable=False),  # JSON array of the keys
        **opts,
    )
    return {t.name: t for t in (resource, field_map, sync_log, window, watermark, rejects,
                                run_lock, owner, record_shape)}

