"""Who may write where: one name, one owner.

- Table and view names (issue 22, item 12): two resources whose names fold to the same
  table (`OpenHouse` and `Open_House` are both `open_house`), or a table equal to another
  resource's view (`PropertyFields` is `property_fields`, the view of `Property`), would
  write into one place, one resource's rows overwriting the other's. `migrate` refuses
  before it creates anything, naming both resources.
- Schemas (issue 22, item 11): feeds.py refuses two feeds configured into one place, but
  only as far as their URLs tell (`127.0.0.1` and `localhost`, a DNS alias, two
  deployments: the same server spelled two ways). So the schema itself says which feed it
  belongs to (etl_owner, one row): the first migrate or run of a feed writes it, and a
  migrate or run of another feed is refused before it writes anything, instead of
  overwriting the owner's rows, watermarks and run locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.errors import SchemaMismatchError
from trestle_tasks.core.masking import mask_url
from trestle_tasks.store.catalog import upsert_rows
from trestle_tasks.store.naming import table_name
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.views import view_name


def check_resource_names(engine: Engine, resources: Iterable[str], schema: str | None,
                         table_prefix: str = "") -> None:
    """Raise SchemaMismatchError when a table or view of one of `resources` (declared
    resources about to be migrated) is a table or view of another resource, this
    migration's or one the store already has (etl_resource)."""
    stored_table = bookkeeping(schema)["etl_resource"]
    with engine.connect() as conn:
        stored: dict[str, str] = {resource: table for resource, table in conn.execute(
            sa.select(stored_table.c.resource, stored_table.c.table_name))}
    wanted = list(dict.fromkeys(resources))
    # The names each resource will use: an existing resource keeps its table's name.
    planned = dict(stored)
    for resource in wanted:
        planned.setdefault(resource, table_name(resource, table_prefix))
    # Stored resources first: the message then says which one was there before.
    order = [*sorted(stored), *(r for r in wanted if r not in stored)]
    owners: dict[str, tuple[str, str, str]] = {}  # folded name -> (resource, kind, name)
    for resource in order:
        table = planned[resource]
        for kind, name in (("table", table), ("view", view_name(table))):
            # Folded: MySQL on macOS/Windows and SQLite compare table names blind to case.
            seen = owners.setdefault(name.casefold(), (resource, kind, name))
            other, other_kind, _ = seen
            if other == resource or (other not in wanted and resource not in wanted):
                continue
            raise SchemaMismatchError(
                f"resources {other} and {resource} would both write to {name} (the "
                f"{other_kind} of {other} and the {kind} of {resource}), one overwriting "
                f"the other: migrate refuses; keep one of them out of TRESTLE_RESOURCES",
                resource=resource, other=other, name=name)


OWNER_ROW = "feed"


@dataclass(frozen=True)
class FeedOwner:
    """A feed as etl_owner records it. Only the name decides (a feed keeps its schema
    when its credential is rotated or its URL respelled); the rest is told in errors."""

    feed: str
    credential: str | None = None  # credential_fingerprint(token URL, client id)
    base_url: str | None = None


def check_owner(engine: Engine, schema: str | None, owner: FeedOwner) -> None:
    """Raise SchemaMismatchError when `schema` belongs to another feed. Reads only, and
    nothing when the schema or etl_owner is not there yet: called before anything else."""
    table = bookkeeping(schema)["etl_owner"]
    inspector = sa.inspect(engine)
    if schema is not None and engine.dialect.name != "sqlite" \
            and not inspector.has_schema(schema):
        return
    if not inspector.has_table(table.name, schema=schema):
        return
    _refuse_another(engine, schema, owner)


def claim_schema(engine: Engine, schema: str | None, owner: FeedOwner) -> None:
    """Record `owner` as the feed `schema` belongs to, unless one is recorded already;
    then raise SchemaMismatchError if that one is another feed (two first runs at once:
    one insert wins, the other is refused). etl_owner must exist (evolve_bookkeeping)."""
    table = bookkeeping(schema)["etl_owner"]
    with engine.begin() as conn:
        upsert_rows(conn, table, [{
            "name": OWNER_ROW, "feed": owner.feed, "credential": owner.credential,
            "base_url": owner.base_url, "claimed_at": datetime.now(UTC)}])
    _refuse_another(engine, schema, owner)


def _refuse_another(engine: Engine, schema: str | None, owner: FeedOwner) -> None:
    table = bookkeeping(schema)["etl_owner"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.name == OWNER_ROW)).mappings().first()
    if row is None or row["feed"] == owner.feed:
        return
    where = f"schema {schema}" if schema else f"database {mask_url(str(engine.url))}"
    source = f" from {row['base_url']}" if row["base_url"] else ""
    qualified = f"{schema}.etl_owner" if schema else "etl_owner"
    handover = f"DELETE FROM {qualified}"  # noqa: S608 (advice printed, never executed)
    raise SchemaMismatchError(
        f"the {where} belongs to feed {row['feed']} (its tables, watermarks and run locks, "
        f"since {row['claimed_at']:%Y-%m-%d %H:%M} UTC{source}); feed {owner.feed} would "
        "overwrite them, so nothing was written. Give feed "
        f"{owner.feed} its own DATABASE_SCHEMA (or DATABASE_URL): two spellings of one "
        "server (127.0.0.1 and localhost, say) are one place. If the tables really are "
        f"{owner.feed}'s now (a renamed feed), hand them over: {handover}",
        schema=schema, owner=row["feed"], feed=owner.feed)
