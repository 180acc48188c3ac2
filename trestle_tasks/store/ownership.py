"""Who may write where: one name, one owner.

- Table and view names (issue 22, item 12): two resources whose names fold to the same
  table (`OpenHouse` and `Open_House` are both `open_house`), or a table equal to another
  resource's view (`PropertyFields` is `property_fields`, the view of `Property`), would
  write into one place, one resource's rows overwriting the other's. `migrate` refuses
  before it creates anything, naming both resources.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.errors import SchemaMismatchError
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
        stored = dict(conn.execute(
            sa.select(stored_table.c.resource, stored_table.c.table_name)).tuples().all())
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
