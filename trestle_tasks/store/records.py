"""Stored records by key: soft deletes for reconcile, key census, counts.

A record that leaves the feed is marked (`deleted_at`), never removed: the row keeps its
last version, export leaves it out unless asked, and if the record comes back an upsert
clears the mark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.catalog import read_catalog
from trestle_tasks.store.dberrors import DEFAULT_DB_RETRY, in_transaction
from trestle_tasks.store.naming import DELETED_COLUMN, VERSION_COLUMN
from trestle_tasks.store.schema import ResourceLayout, bookkeeping

KEYS_PER_STATEMENT = 1000
KEYS_PER_PAGE = 10_000


def layout_of(engine: Engine, resource: str, schema: str | None = None) -> ResourceLayout:
    with engine.connect() as conn:
        return read_catalog(conn, resource, schema).layout


def mark_deleted(
    engine: Engine,
    resource: str,
    keys: Iterable[Any],
    *,
    schema: str | None = None,
    at: datetime | None = None,
    run_id: str | None = None,
    retry: RetryPolicy = DEFAULT_DB_RETRY,
) -> int:
    """Soft-delete the records with these keys; returns how many were newly marked.

    Already-marked records keep their first deletion time. With `run_id`, the count is
    added to the run's records_deleted in the same transactions.
    """
    layout = layout_of(engine, resource, schema)
    table = layout.table
    key = table.c[layout.key_column]
    deleted = table.c[DELETED_COLUMN]
    when = at or datetime.now(UTC)
    log = bookkeeping(schema)["etl_sync_log"]
    total = 0
    batch: list[Any] = []

    def flush(chunk: list[Any]) -> int:
        def work(conn: sa.Connection) -> int:
            done = conn.execute(sa.update(table).where(key.in_(chunk), deleted.is_(None))
                                .values({DELETED_COLUMN: when}))
            count = int(done.rowcount or 0)
            if run_id is not None and count:
                conn.execute(sa.update(log).where(
                    log.c.run_id == run_id, log.c.resource == resource
                ).values(records_deleted=log.c.records_deleted + count))
            return count

        return int(in_transaction(engine, work, policy=retry))

    for value in keys:
        batch.append(value)
        if len(batch) >= KEYS_PER_STATEMENT:
            total += flush(batch)
            batch = []
    if batch:
        total += flush(batch)
    return total


def restore_deleted(
    engine: Engine,
    resource: str,
    keys: Iterable[Any],
    *,
    schema: str | None = None,
    retry: RetryPolicy = DEFAULT_DB_RETRY,
) -> int:
    """Clear the deletion mark of records that are back in the feed; returns how many."""
    layout = layout_of(engine, resource, schema)
    table = layout.table
    key = table.c[layout.key_column]
    deleted = table.c[DELETED_COLUMN]
    total = 0
    chunk: list[Any] = []

    def flush(values: list[Any]) -> int:
        return int(in_transaction(engine, lambda conn: conn.execute(
            sa.update(table).where(key.in_(values), deleted.is_not(None))
            .values({DELETED_COLUMN: None})).rowcount or 0, policy=retry))

    for value in keys:
        chunk.append(value)
        if len(chunk) >= KEYS_PER_STATEMENT:
            total += flush(chunk)
            chunk = []
    if chunk:
        total += flush(chunk)
    return total


def deleted_keys(engine: Engine, resource: str, *, schema: str | None = None) -> Iterator[Any]:
    """Keys of the records marked deleted, in key order."""
    layout = layout_of(engine, resource, schema)
    table = layout.table
    key = table.c[layout.key_column]
    query = sa.select(key).where(table.c[DELETED_COLUMN].is_not(None)).order_by(key)
    with engine.connect() as conn:
        yield from conn.execute(query).scalars().all()


def child_keys(engine: Engine, resource: str, parent_field: str, parent_keys: Iterable[Any],
               *, schema: str | None = None) -> dict[Any, set[Any]]:
    """Live (not deleted) keys of `resource` per parent, e.g. Media per ListingKey."""
    layout = layout_of(engine, resource, schema)
    table = layout.table
    if parent_field not in layout.columns:
        raise ValueError(f"{resource}.{parent_field} is not a typed column")
    key = table.c[layout.key_column]
    parent = table.c[layout.columns[parent_field]]
    wanted = list(parent_keys)
    found: dict[Any, set[Any]] = {value: set() for value in wanted}
    with engine.connect() as conn:
        for start in range(0, len(wanted), KEYS_PER_STATEMENT):
            chunk = wanted[start:start + KEYS_PER_STATEMENT]
            rows = conn.execute(sa.select(parent, key).where(
                parent.in_(chunk), table.c[DELETED_COLUMN].is_(None)))
            for parent_value, key_value in rows:
                found.setdefault(parent_value, set()).add(key_value)
    return found


def in_key_order(engine: Engine, query: sa.Select[Any], key: sa.ColumnElement[Any],
                 page_size: int) -> Iterator[Sequence[Any]]:
    """The rows of `query` (whose first column is `key`) in key order, a page at a time.

    Each page is its own short query (keyset: `key > last`), so a long walk holds no
    connection or open cursor between pages and never pins one snapshot for its whole
    length; rows written meanwhile are seen or not, never twice."""
    last: Any = None
    while True:
        page_query = query.order_by(key).limit(page_size)
        if last is not None:
            page_query = page_query.where(key > last)
        with engine.connect() as conn:
            page = conn.execute(page_query).all()
        if not page:
            return
        yield page
        last = page[-1][0]


def stored_keys(engine: Engine, resource: str, *, schema: str | None = None,
                include_deleted: bool = False) -> Iterator[Any]:
    """Every stored key in key order, streamed page by page (for the key census)."""
    layout = layout_of(engine, resource, schema)
    table = layout.table
    key = table.c[layout.key_column]
    query = sa.select(key)
    if not include_deleted:
        query = query.where(table.c[DELETED_COLUMN].is_(None))
    for page in in_key_order(engine, query, key, KEYS_PER_PAGE):
        for (stored_key,) in page:
            yield stored_key


def stored_versions(engine: Engine, resource: str, *, schema: str | None = None
                    ) -> Iterator[tuple[Any, int | None, bool]]:
    """(key, ModificationTimestamp ticks, deleted) of every stored row, deleted ones too,
    streamed in key order a page at a time: the store's side of a reconcile census."""
    layout = layout_of(engine, resource, schema)
    table = layout.table
    key = table.c[layout.key_column]
    query = sa.select(key, table.c[VERSION_COLUMN], table.c[DELETED_COLUMN].is_not(None))
    for page in in_key_order(engine, query, key, KEYS_PER_PAGE):
        for stored_key, ticks, deleted in page:
            yield stored_key, None if ticks is None else int(ticks), bool(deleted)


def rejected_versions(engine: Engine, resource: str, *, schema: str | None = None,
                      timestamp_field: str = "ModificationTimestamp") -> dict[str, int | None]:
    """Key -> ModificationTimestamp ticks of the newest rejected version of each record
    (None when that version had no readable timestamp), from etl_rejects' raw records."""
    rejects = bookkeeping(schema)["etl_rejects"]
    query = (sa.select(rejects.c.record_key, rejects.c.raw_record)
             .where(rejects.c.resource == resource, rejects.c.record_key.is_not(None))
             .order_by(rejects.c.id))
    versions: dict[str, int | None] = {}
    with engine.connect() as conn:
        for key, raw in conn.execute(query):
            versions[key] = _timestamp_ticks(raw, timestamp_field)
    return versions


def _timestamp_ticks(raw: str | None, field: str) -> int | None:
    try:
        return ODataTimestamp.parse(json.loads(raw or "null")[field]).ticks
    except (ValueError, TypeError, KeyError):
        return None


def count_records(engine: Engine, resource: str, *, schema: str | None = None,
                  include_deleted: bool = False, at_most: int | None = None) -> int:
    """Stored rows; with `at_most`, counting stops there (cheap on a big table)."""
    layout = layout_of(engine, resource, schema)
    table = layout.table
    rows = sa.select(sa.literal(1)).select_from(table)
    if not include_deleted:
        rows = rows.where(table.c[DELETED_COLUMN].is_(None))
    if at_most is not None:
        rows = rows.limit(at_most)
    query = sa.select(sa.func.count()).select_from(rows.subquery())
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
