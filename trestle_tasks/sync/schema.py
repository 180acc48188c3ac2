"""Making sure the tables exist before a sync writes to them (migrate on first use)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from trestle_tasks.store.migrate import MigrationReport
from trestle_tasks.store.store import Store
from trestle_tasks.trestle.client import TrestleClient

log = logging.getLogger(__name__)


def migrate_from_service(
    store: Store, client: TrestleClient, resources: Iterable[str]
) -> MigrationReport:
    """Read `$metadata` and create or evolve the tables of `resources` (idempotent)."""
    return store.migrate(client.get_metadata(), list(resources))


def ensure_tables(store: Store, client: TrestleClient, resources: Iterable[str]) -> None:
    """Migrate when any of the resources has no table yet; otherwise only add bookkeeping
    columns a newer version needs (so an upgrade without `migrate` keeps working)."""
    wanted = list(resources)
    catalogued = sa.inspect(store.engine).has_table("etl_resource", schema=store.schema)
    present = set(store.resources()) if catalogued else set()
    missing = [r for r in wanted if r not in present]
    if missing:
        log.info("creating tables for %s from $metadata", ", ".join(missing))
        _racing_other_migrations(lambda: migrate_from_service(store, client, wanted))
    else:
        _racing_other_migrations(store.evolve_bookkeeping)


# What the databases say when another process created the same table a moment earlier.
_ALREADY_CREATED = ("already exists", "duplicate key value", "duplicate column")


def _racing_other_migrations(migrate: Callable[[], object], attempts: int = 5) -> None:
    """Run an idempotent migration, again if another resource's first run created a shared
    bookkeeping table (etl_field_map, say) between our check and our CREATE.

    Each resource's run lock serialises its own tables only; the runs of different
    resources start together on a new database.
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
