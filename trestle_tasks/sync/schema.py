"""Making sure the tables exist before a sync writes to them (migrate on first use)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa

from trestle_tasks.store.migrate import MigrationReport, racing_other_migrations
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
        racing_other_migrations(lambda: migrate_from_service(store, client, wanted))
    else:
        racing_other_migrations(store.evolve_bookkeeping)
