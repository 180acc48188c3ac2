"""A resource table's secondary indexes: deferred during a first load, built once at its end.

Every row a first load writes also goes into each secondary index (a dozen for Property:
the typed columns and the version column), one random B-tree insert at a time; an index
built afterwards sorts the rows once. A first load into an empty table therefore drops
them when it is planned and builds them when it is finalized, in one statement per table
on MariaDB/MySQL (one scan of the table for all of them). A load that dies before its
finalize leaves them missing: the next run's planning (or `migrate`) builds them, so an
index is missing for at most the life of a failed first load. The primary key stays: the
loader's guarded upsert looks rows up by key.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.store.schema import ResourceLayout


def _present(engine: Engine, layout: ResourceLayout) -> set[str]:
    inspector = sa.inspect(engine)
    return {str(index["name"]) for index in inspector.get_indexes(layout.table_name,
                                                                  schema=layout.schema)}


def missing_indexes(engine: Engine, layout: ResourceLayout) -> list[sa.Index]:
    """The layout's secondary indexes the table does not have, by name."""
    present = _present(engine, layout)
    return sorted((index for index in layout.table.indexes if index.name not in present),
                  key=lambda index: str(index.name))


def drop_secondary_indexes(engine: Engine, layout: ResourceLayout) -> list[str]:
    """Drop the layout's secondary indexes the table has; returns the names of all of
    them, those a first load that died had dropped already included (all to build)."""
    present = _present(engine, layout)
    every = sorted(str(index.name) for index in layout.table.indexes)
    dropped = [name for name in every if name in present]
    if not dropped:
        return every
    preparer = engine.dialect.identifier_preparer
    table = preparer.format_table(layout.table)
    with engine.begin() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            drops = ", ".join(f"DROP INDEX {preparer.quote(name)}" for name in dropped)
            conn.exec_driver_sql(f"ALTER TABLE {table} {drops}")
        else:
            for index in layout.table.indexes:
                if index.name in dropped:
                    conn.execute(sa.schema.DropIndex(index))
    return every


def build_missing_indexes(engine: Engine, layout: ResourceLayout) -> list[str]:
    """Create the layout's secondary indexes the table lacks; returns their names."""
    missing = missing_indexes(engine, layout)
    if not missing:
        return []
    try:
        _create(engine, layout, missing)
    except sa.exc.DBAPIError:
        # Another process built them meanwhile (a second delivery of a finalize, a
        # `migrate`): what matters is that none is missing now.
        if missing_indexes(engine, layout):
            raise
        return []
    return [str(index.name) for index in missing]


def _create(engine: Engine, layout: ResourceLayout, missing: list[sa.Index]) -> None:
    with engine.begin() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            preparer = engine.dialect.identifier_preparer
            adds = ", ".join(
                f"ADD INDEX {preparer.quote(str(index.name))} "
                f"({', '.join(preparer.quote(column.name) for column in index.columns)})"
                for index in missing)
            conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(layout.table)} {adds}")
        else:
            for index in missing:
                conn.execute(sa.schema.CreateIndex(index))
