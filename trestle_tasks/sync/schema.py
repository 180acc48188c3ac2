"""Making sure the tables exist before a sync writes to them (migrate on first use)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from trestle_tasks.core.errors import ConfigurationError
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
    """Migrate when any of the resources has no table yet; otherwise add bookkeeping
    columns a newer version needs and etl_shape to resource tables made before it (so an
    upgrade without `migrate` keeps working), and
    apply a changed STORE_INDEXED_FIELDS from the stored catalog (no request to Trestle)."""
    wanted = list(resources)
    catalogued = store.has_table("etl_resource")
    present = set(store.resources()) if catalogued else set()
    missing = [r for r in wanted if r not in present]
    if missing:
        log.info("creating tables for %s from $metadata", ", ".join(missing))
        racing_other_migrations(lambda: migrate_from_service(store, client, wanted))
        require_declared(store, wanted)
    else:
        racing_other_migrations(store.evolve_bookkeeping)
        racing_other_migrations(lambda: store.add_shape_columns(wanted))
        pending = store.pending_promotions(wanted)
        if pending:
            log.info("applying STORE_INDEXED_FIELDS to %s", ", ".join(pending))
            racing_other_migrations(lambda: store.apply_promotions(pending))


def require_declared(store: Store, resources: Iterable[str]) -> None:
    """A resource `$metadata` does not declare gets no table; say that, rather than let
    the run fail later on a missing table with a hint to run `migrate` (which cannot help)."""
    present = set(store.resources())
    undeclared = [r for r in resources if r not in present]
    if undeclared:
        # A setting to fix (exit 2, as an unknown --resource), not a broken $metadata.
        raise ConfigurationError(
            f"$metadata does not declare {', '.join(undeclared)}: remove "
            f"{'it' if len(undeclared) == 1 else 'them'} from TRESTLE_RESOURCES (or check "
            "that the subscription licenses it)", resource=undeclared[0])
