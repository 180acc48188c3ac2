"""Compact documents on the three databases: records stored without their nulls export
exactly as received, beside records stored whole by a table made before etl_shape (which
the next run gives the column without `migrate`); a record stored whole over a compact one
clears its shape; a missing shape stops export with the record named, never a wrong line."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store_data import migrate_small
from tests.store_fixtures import StoreTarget, count_rows, store_target  # noqa: F401
from trestle_tasks.core.errors import StoreError
from trestle_tasks.store import catalog
from trestle_tasks.store.export import write_ndjson
from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.migrate import add_shape_columns
from trestle_tasks.store.schema import bookkeeping


def record(i: int, **values: Any) -> dict[str, Any]:
    # Trestle's form: every field, set or null, in declared order.
    return {"ListingKey": f"L{i:03d}", "ListingId": f"ID{i}", "StandardStatus": None,
            "ListPrice": Decimal("100.50") if i % 2 else None, "City": None,
            "ModificationTimestamp": f"2024-01-01T00:00:{i:02d}.1234567Z",
            "PublicRemarks": None, **values}


def exported(target: StoreTarget) -> list[str]:
    out = io.StringIO()
    write_ndjson(target.engine, "Property", out, schema=target.schema)
    return out.getvalue().splitlines()


def shapes_of(target: StoreTarget) -> dict[str, str | None]:
    table = sa.Table("property", sa.MetaData(schema=target.schema),
                     autoload_with=target.engine)
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.ListingKey, table.c.etl_shape)).all()
    return {key: shape for key, shape in rows}


def drop_shape_column(target: StoreTarget) -> None:
    """The table as a version before etl_shape made it."""
    with target.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {target.table('property')} DROP COLUMN etl_shape"))
    catalog._SEEN_COLUMNS.clear()


def load(target: StoreTarget, records: list[dict[str, Any]]) -> None:
    result = RecordLoader.open(target.engine, "Property", schema=target.schema).load(records)
    assert result.rejected == 0, result.rejections


def test_old_tables_store_whole_then_compact_after_the_column_comes(
        store_target: StoreTarget) -> None:  # noqa: F811
    target = store_target
    migrate_small(target, ("Property",))
    drop_shape_column(target)
    whole = [record(i) for i in range(1, 4)]
    load(target, whole)
    assert exported(target) == [encode_json(r) for r in whole]

    assert add_shape_columns(target.engine, target.schema, ["Property"]) == ["property"]
    assert add_shape_columns(target.engine, target.schema, ["Property"]) == []
    compact = [record(i) for i in range(4, 7)]
    load(target, compact)
    shapes = shapes_of(target)
    assert [shapes[r["ListingKey"]] for r in whole] == [None] * 3
    assert len({shapes[r["ListingKey"]] for r in compact} - {None}) == 1
    assert count_rows(target, "etl_record_shape") == 1
    # Old and new rows alike come out exactly as they were received.
    assert exported(target) == [encode_json(r) for r in whole + compact]


def test_a_record_without_nulls_over_a_compact_one_clears_its_shape(
        store_target: StoreTarget) -> None:  # noqa: F811
    target = store_target
    migrate_small(target, ("Property",))
    load(target, [record(1)])
    assert shapes_of(target)["L001"] is not None
    full = {"ListingKey": "L001", "ListingId": "ID1",
            "ModificationTimestamp": "2024-01-01T00:00:09Z"}
    load(target, [full])
    assert shapes_of(target)["L001"] is None
    assert exported(target) == [encode_json(full)]


def test_a_missing_shape_stops_export_naming_the_record(
        store_target: StoreTarget) -> None:  # noqa: F811
    target = store_target
    migrate_small(target, ("Property",))
    load(target, [record(1), record(2, City="Springfield")])
    with target.engine.begin() as conn:
        conn.execute(sa.delete(bookkeeping(target.schema)["etl_record_shape"]))
    with pytest.raises(StoreError, match=r"'L001' cannot be restored: its shape \w+ is not in"):
        exported(target)
