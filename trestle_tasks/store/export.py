"""Stored records back to RESO JSON, for `trestle-etl export`.

The document column is the record as the server sent it (navigation properties aside),
already JSON with exact decimals, less its null members when it has a shape: export puts
those back from the shape (shapes.py) and writes the rest unchanged, one line per record,
in key order, page by page so memory stays flat whatever the table size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.errors import StoreError
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.naming import DELETED_COLUMN, RECORD_COLUMN, SHAPE_COLUMN
from trestle_tasks.store.records import in_key_order, layout_of
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.shapes import ShapeError, names_of, restore

EXPORT_PAGE = 500
KEPT_SHAPES = 256  # shapes' key lists kept while exporting (each at most 256 KB)


def iter_documents(engine: Engine, resource: str, *, schema: str | None = None,
                   include_deleted: bool = False, page_size: int = EXPORT_PAGE,
                   flags_as_lists: bool = False) -> Iterator[str]:
    """Each stored record's JSON text, in key order.

    With `flags_as_lists`, multi-select enumerations that the server sent as one
    comma-separated string (Trestle's IsFlags form) are written as JSON arrays, the form
    RESO DD 2.0 servers use; by default every record is written exactly as received.
    """
    layout = layout_of(engine, resource, schema)
    flags = [f.name for f in layout.spec.fields
             if f.enum is not None and f.enum.is_flags and not f.is_collection]
    if flags_as_lists and flags:
        for text in _documents(engine, layout, include_deleted, page_size):
            yield _split_flags(text, flags)
        return
    yield from _documents(engine, layout, include_deleted, page_size)


def _split_flags(text: str, flags: list[str]) -> str:
    record = decode_json(text)
    changed = False
    for name in flags:
        value = record.get(name)
        if isinstance(value, str):
            record[name] = [part for part in value.split(",") if part]
            changed = True
    return encode_json(record) if changed else text


def _documents(engine: Engine, layout: Any, include_deleted: bool,
               page_size: int) -> Iterator[str]:
    table = layout.table
    key = table.c[layout.key_column]
    if not layout.shapes:
        query = sa.select(key, table.c[RECORD_COLUMN])
    else:
        query = sa.select(key, table.c[RECORD_COLUMN], table.c[SHAPE_COLUMN])
    if not include_deleted:
        query = query.where(table.c[DELETED_COLUMN].is_(None))
    shapes = ShapeNames(engine, layout.schema)
    for page in in_key_order(engine, query, key, page_size):
        for record_key, text, *shape in page:
            if not shape or shape[0] is None:
                yield text
                continue
            try:
                yield restore(text, shapes.names(shape[0]))
            except ShapeError as exc:
                raise StoreError(f"{layout.resource} {record_key!r} cannot be restored: "
                                 f"{exc}", resource=layout.resource) from exc


class ShapeNames:
    """Shapes read from etl_record_shape as records need them (a feed has a handful)."""

    def __init__(self, engine: Engine, schema: str | None) -> None:
        self._engine = engine
        self._table = bookkeeping(schema)["etl_record_shape"]
        self._names: dict[str, list[str]] = {}

    def names(self, shape: str) -> list[str]:
        names = self._names.get(shape)
        if names is None:
            with self._engine.connect() as conn:
                text = conn.execute(sa.select(self._table.c.names)
                                    .where(self._table.c.shape == shape)).scalar()
            if text is None:
                raise ShapeError(f"its shape {shape} is not in etl_record_shape")
            if len(self._names) >= KEPT_SHAPES:
                self._names.clear()  # a feed that sent many shapes: memory stays bounded
            names = self._names[shape] = names_of(text)
        return names


def export_records(engine: Engine, resource: str, *, schema: str | None = None,
                   include_deleted: bool = False, flags_as_lists: bool = False
                   ) -> Iterator[dict[str, Any]]:
    """Each stored record as a dict (decimals as Decimal, exactly as stored)."""
    for text in iter_documents(engine, resource, schema=schema,
                               include_deleted=include_deleted,
                               flags_as_lists=flags_as_lists):
        yield decode_json(text)


def write_ndjson(engine: Engine, resource: str, out: TextIO, *, schema: str | None = None,
                 include_deleted: bool = False, flags_as_lists: bool = False) -> int:
    """Write the records as NDJSON to `out`; returns how many were written."""
    count = 0
    for text in iter_documents(engine, resource, schema=schema,
                               include_deleted=include_deleted,
                               flags_as_lists=flags_as_lists):
        out.write(text)
        out.write("\n")
        count += 1
    return count
