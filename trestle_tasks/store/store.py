"""The store as the sync layer and the CLI use it: one engine, one namespace, one object.

    store = Store.from_settings(settings)     # one feed's: its URL, schema, batch size
    store.migrate(metadata_xml, settings.resources)        # trestle-etl migrate
    store.sync_log.open_run(run_id, "Property", ...)
    store.upsert("Property", page.records, run_id=run_id, window_id=window)
    store.sync_log.close_run(run_id, "Property", status="succeeded")
    store.export("Property", sys.stdout)                     # trestle-etl export

Loaders are built from etl_field_map on first use and kept per resource (per process:
build a Store after a Celery worker forks, not before). `migrate` drops them here, and a
loader notices a migrate run elsewhere within `catalog_ttl_s`, so new columns are filled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.edm.metadata import ServiceMetadata, parse_metadata
from trestle_tasks.store import export as export_module
from trestle_tasks.store import indexes as indexes_module
from trestle_tasks.store import records as records_module
from trestle_tasks.store.catalog import read_catalog
from trestle_tasks.store.dberrors import DEFAULT_DB_RETRY, teach_is_retriable
from trestle_tasks.store.engine import create_store_engine
from trestle_tasks.store.loader import DEFAULT_BATCH_SIZE, LoadResult, RecordLoader
from trestle_tasks.store.migrate import (
    MigrationReport,
    add_shape_columns,
    evolve_bookkeeping,
    migrate,
)
from trestle_tasks.store.ownership import FeedOwner, check_owner, claim_schema
from trestle_tasks.store.promotion_check import check_promoted_names
from trestle_tasks.store.schema import bookkeeping, promoted_fields
from trestle_tasks.store.sync_log import SyncLog
from trestle_tasks.store.views import view_name

if TYPE_CHECKING:
    from trestle_tasks.core.settings import Settings


class Store:
    def __init__(
        self,
        engine: Engine,
        *,
        schema: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry: RetryPolicy = DEFAULT_DB_RETRY,
        promote: Mapping[str, Sequence[str]] | None = None,
        catalog_ttl_s: float = 60.0,
        owner: FeedOwner | None = None,
    ) -> None:
        teach_is_retriable()  # this store's database errors are read as retriable or fatal
        self.engine = engine
        self.schema = schema
        self.batch_size = batch_size
        self.retry = retry
        self.promote = dict(promote or {})
        self.catalog_ttl_s = catalog_ttl_s
        # The feed this Store writes for: migrate and every run (evolve_bookkeeping) claim
        # the schema for it, and refuse one another feed owns (store/ownership.py).
        self.owner = owner
        self.sync_log = SyncLog(engine, schema=schema, retry=retry)
        self._loaders: dict[str, tuple[RecordLoader, Any, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5, max_overflow: int = 5,
                 pool_recycle_s: int = 1800, **options: Any) -> Store:
        """A Store on a new engine."""
        engine = create_store_engine(
            url, pool_size=pool_size, max_overflow=max_overflow,
            pool_recycle_s=pool_recycle_s)
        return cls(engine, **options)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Store:
        """One feed's Store: its database URL and schema (feeds.py keeps each feed's tables
        in a schema of its own), batch size and typed columns. `options` go to from_url
        (pool sizes) or override these."""
        from trestle_tasks.trestle.auth import credential_fingerprint

        owner = FeedOwner(settings.feed, credential_fingerprint(
            settings.token_url, settings.client_id or ""), settings.base_url)
        chosen: dict[str, Any] = {"schema": settings.database_schema,
                                  "batch_size": settings.batch_size,
                                  "promote": settings.promoted_fields, "owner": owner,
                                  **options}
        return cls.from_url(settings.database_url, **chosen)

    # -- schema --

    def migrate(self, metadata: ServiceMetadata | bytes | str,
                resources: Iterable[str] | None = None) -> MigrationReport:
        """Create or evolve tables from `$metadata` (parsed, or the document itself)."""
        if not isinstance(metadata, ServiceMetadata):
            metadata = parse_metadata(metadata)
        check_promoted_names(self.promote, metadata.resources, source="$metadata")
        evolved = self._claim()
        report = migrate(self.engine, metadata, resources, schema=self.schema,
                         promote=self.promote)
        for added in evolved:  # bookkeeping columns the claim's evolve_bookkeeping added
            table, column = added.split(".", 1)
            report.added_columns.setdefault(table, []).insert(0, column)
        with self._lock:
            self._loaders.clear()
        return report

    def stored_metadata(self, resources: Iterable[str] | None = None) -> ServiceMetadata:
        """The metadata the store last applied, read back from etl_field_map (no request)."""
        names = list(resources) if resources is not None else self.resources()
        with self.engine.connect() as conn:
            specs = {name: read_catalog(conn, name, self.schema).layout.spec for name in names}
        return ServiceMetadata(resources=specs, enums={})

    def pending_promotions(self, resources: Iterable[str] | None = None) -> list[str]:
        """Resources whose typed columns differ from what `promote` asks for now (a field
        added to or removed from STORE_INDEXED_FIELDS since the last migrate)."""
        names = list(resources) if resources is not None else self.resources()
        pending: list[str] = []
        with self.engine.connect() as conn:
            layouts = {name: read_catalog(conn, name, self.schema).layout for name in names}
        # A misspelt field is an error, not a field quietly left out (or demoted).
        check_promoted_names(self.promote, {n: lay.spec for n, lay in layouts.items()},
                             source="the stored catalog")
        for name, layout in layouts.items():
            wanted = promoted_fields(layout.spec, self.promote.get(name, ()))
            if set(layout.columns) != set(wanted):
                pending.append(name)
        return pending

    def apply_promotions(self, resources: Iterable[str] | None = None) -> MigrationReport:
        """Promote and demote fields as `promote` says, from the stored catalog: new columns
        are filled from the stored documents, dropped ones lose only the column and its
        index. Asks Trestle for nothing."""
        names = list(resources) if resources is not None else self.resources()
        return self.migrate(self.stored_metadata(names), names)

    def view_name(self, resource: str) -> str:
        """The typed view of `resource`: `<table>_fields`."""
        with self.engine.connect() as conn:
            return view_name(read_catalog(conn, resource, self.schema).layout.table_name)

    def evolve_bookkeeping(self) -> list[str]:
        """Create or complete the bookkeeping tables (no `$metadata` needed), and claim
        the schema for this Store's feed: a sync calls it before each run."""
        return self._claim()

    def add_shape_columns(self, resources: Iterable[str]) -> list[str]:
        """Give tables made before etl_shape came that column (compact documents)."""
        return add_shape_columns(self.engine, self.schema, resources)

    def has_sync_log(self) -> bool:
        """Whether the bookkeeping tables exist yet (a database nothing was synced into
        has none)."""
        return self.has_table("etl_sync_log")

    def has_table(self, name: str) -> bool:
        """Whether the table exists in this store's schema."""
        return sa.inspect(self.engine).has_table(name, schema=self.schema)

    def check_owner(self) -> None:
        """SchemaMismatchError when the schema belongs to another feed; reads only. A run
        asks before it takes its lock or opens its row in the sync log, so a refused feed
        touches neither (its tables are checked again, and claimed, by `prepare`)."""
        if self.owner is not None:
            check_owner(self.engine, self.schema, self.owner)

    def _claim(self) -> list[str]:
        """Refuse a schema another feed owns before writing anything (not even a
        bookkeeping column), then evolve the bookkeeping tables and record the owner."""
        self.check_owner()
        added = evolve_bookkeeping(self.engine, self.schema)
        if self.owner is not None:
            claim_schema(self.engine, self.schema, self.owner)
        return added

    def resources(self) -> list[str]:
        """Resources that have tables (from etl_resource)."""
        table = bookkeeping(self.schema)["etl_resource"]
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(table.c.resource).order_by(table.c.resource))
                        .scalars())

    # -- loading --

    def loader(self, resource: str) -> RecordLoader:
        """The resource's loader, rebuilt when a migrate (here or in another process) has
        changed the catalog since; checked at most every `catalog_ttl_s` seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._loaders.get(resource)
        if cached is not None:
            loader, stamp, checked = cached
            if now - checked < self.catalog_ttl_s or self._migrated_at(resource) == stamp:
                if now - checked >= self.catalog_ttl_s:
                    with self._lock:
                        self._loaders[resource] = (loader, stamp, now)
                return loader
        stamp = self._migrated_at(resource)
        loader = RecordLoader.open(self.engine, resource, schema=self.schema,
                                   batch_size=self.batch_size, retry=self.retry)
        with self._lock:
            self._loaders[resource] = (loader, stamp, now)
        return loader

    def _migrated_at(self, resource: str) -> Any:
        table = bookkeeping(self.schema)["etl_resource"]
        with self.engine.connect() as conn:
            return conn.execute(sa.select(table.c.migrated_at).where(
                table.c.resource == resource)).scalar()

    def upsert(self, resource: str, records: Iterable[Any], *, run_id: str | None = None,
               window_id: str | None = None) -> LoadResult:
        """Validate and upsert `records` in batches; see RecordLoader.load."""
        return self.loader(resource).load(records, run_id=run_id, window_id=window_id)

    # -- reconcile --

    def mark_deleted(self, resource: str, keys: Iterable[Any], *, run_id: str | None = None,
                     at: datetime | None = None) -> int:
        return records_module.mark_deleted(self.engine, resource, keys, schema=self.schema,
                                           at=at, run_id=run_id, retry=self.retry)

    def child_keys(self, resource: str, parent_field: str, parent_keys: Iterable[Any]
                   ) -> dict[Any, set[Any]]:
        return records_module.child_keys(self.engine, resource, parent_field, parent_keys,
                                         schema=self.schema)

    def restore_deleted(self, resource: str, keys: Iterable[Any]) -> int:
        return records_module.restore_deleted(self.engine, resource, keys, schema=self.schema,
                                              retry=self.retry)

    def deleted_keys(self, resource: str) -> Iterator[Any]:
        return records_module.deleted_keys(self.engine, resource, schema=self.schema)

    def stored_keys(self, resource: str, *, include_deleted: bool = False) -> Iterator[Any]:
        return records_module.stored_keys(self.engine, resource, schema=self.schema,
                                          include_deleted=include_deleted)

    def stored_versions(self, resource: str) -> Iterator[tuple[Any, int | None, bool]]:
        """(key, ModificationTimestamp ticks, deleted) of every stored row, in key order."""
        return records_module.stored_versions(self.engine, resource, schema=self.schema)

    def rejected_versions(self, resource: str) -> dict[str, int | None]:
        """Key -> ticks of the newest version of each record that failed validation."""
        return records_module.rejected_versions(self.engine, resource, schema=self.schema)

    def count(self, resource: str, *, include_deleted: bool = False,
              at_most: int | None = None) -> int:
        return records_module.count_records(self.engine, resource, schema=self.schema,
                                            include_deleted=include_deleted, at_most=at_most)

    # -- secondary indexes (deferred during a first load; see store/indexes.py) --

    def is_empty(self, resource: str) -> bool:
        """No row at all, deleted ones included: what only a first load sees."""
        return self.count(resource, include_deleted=True, at_most=1) == 0

    def defer_indexes(self, resource: str) -> list[str]:
        """Drop the resource's secondary indexes for a first load; returns the names of
        all of them (those already missing included): what its finalize builds."""
        return indexes_module.drop_secondary_indexes(
            self.engine, records_module.layout_of(self.engine, resource, self.schema))

    def build_missing_indexes(self, resource: str) -> list[str]:
        """Create whichever of the resource's secondary indexes are missing (the end of a
        first load, or the repair after one that died); returns their names."""
        return indexes_module.build_missing_indexes(
            self.engine, records_module.layout_of(self.engine, resource, self.schema))

    # -- export --

    def export(self, resource: str, out: TextIO, *, include_deleted: bool = False,
               flags_as_lists: bool = False) -> int:
        """Write the stored records as NDJSON, as received (or with comma-separated
        multi-select values as arrays); returns how many."""
        return export_module.write_ndjson(self.engine, resource, out, schema=self.schema,
                                          include_deleted=include_deleted,
                                          flags_as_lists=flags_as_lists)

    def records(self, resource: str, *, include_deleted: bool = False
                ) -> Iterator[dict[str, Any]]:
        return export_module.export_records(self.engine, resource, schema=self.schema,
                                            include_deleted=include_deleted)

    def dispose(self) -> None:
        self.engine.dispose()
