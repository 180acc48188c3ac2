"""Stored records back to RESO JSON, for `trestle-etl export`.

The document column is the record as the server sent it (navigation properties aside),
already JSON with exact decimals; export writes it out unchanged, one line per record, in
key order, page by page so memory stays flat whatever the table size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.naming import DELETED_COLUMN, RECORD_COLUMN
from trestle_tasks.store.records import in_key_order, layout_of

EXPORT_PAGE = 500


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
    query = sa.select(key, table.c[RECORD_COLUMN])
    if not include_deleted:
        query = query.where(table.c[DELETED_COLUMN].is_(None))
    for page in in_key_order(engine, query, key, page_size):
        for _key, text in page:
            yield text


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
