"""Type conversion: a record stored and then exported equals the input, for
arbitrary values within the declared types; and the typed columns hold the same values in
their SQL types (timestamps in UTC truncated to microseconds, decimals exact)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.store_data import PROPERTY, migrate_small, records, unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target, stored_texts  # noqa: F401
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.records import layout_of


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target)
    return module_store_target


def stored(target: StoreTarget, keys: list[str]) -> dict[str, dict[str, Any]]:
    layout = layout_of(target.engine, "Property", target.schema)
    table = layout.table
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.ListingKey.in_(keys))).mappings()
        return {row["ListingKey"]: dict(row) for row in rows}


@given(batch=st.lists(records(), min_size=1, max_size=8, unique_by=lambda r: r["ListingKey"]))
def test_stored_then_exported_equals_input(target: StoreTarget, batch: list[dict[str, Any]]
                                           ) -> None:
    prefix = unique_prefix()
    for record in batch:
        record["ListingKey"] = (prefix + record["ListingKey"])[:64]
    keys = [r["ListingKey"] for r in batch]
    if len(set(keys)) != len(keys):
        return  # truncation made two keys equal; nothing to learn from this example
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema, batch_size=5)
    result = loader.load(batch)
    assert result.rejected == 0, [(r.field, r.reason, r.detail) for r in result.rejections]
    rows = stored(target, keys)
    assert set(rows) == set(keys)
    for record in batch:
        row = rows[record["ListingKey"]]
        # The document is the record less its nulls; export puts them back from its shape:
        # equal as values, key for key in order, and digit for digit.
        present = {k: v for k, v in record.items() if v is not None}
        assert decode_json(row["etl_record"]) == present
        assert (row["etl_shape"] is None) == (present == record)
        exported = stored_texts(target, "Property", [record["ListingKey"]])[
            record["ListingKey"]]
        assert decode_json(exported) == record
        assert list(decode_json(exported)) == list(record)
        assert exported == encode_json(record)
        check_typed_columns(target, record, row)


def check_typed_columns(target: StoreTarget, record: dict[str, Any], row: dict[str, Any]
                        ) -> None:
    stamp = ODataTimestamp.parse(record["ModificationTimestamp"])
    assert row["etl_mod_ticks"] == stamp.ticks
    assert row["ModificationTimestamp"] == stamp.to_datetime()
    assert row["deleted_at"] is None
    for name in ("ListingId", "City", "PostalCode", "StandardStatus"):
        assert row[name] == record.get(name)
    for name in ("BedroomsTotal", "BathroomsTotalInteger", "PhotosCount"):
        assert row[name] == record.get(name)
    photos = record.get("PhotosChangeTimestamp")
    expected = None if photos is None else ODataTimestamp.parse(photos).to_datetime()
    assert row["PhotosChangeTimestamp"] == expected
    price = record.get("ListPrice")
    if price is None:
        assert row["ListPrice"] is None
    elif target.dialect == "sqlite":
        # NUMERIC affinity: exact up to 15 significant digits (the document is exact).
        assert Decimal(str(row["ListPrice"])) == pytest.approx(price, rel=Decimal("1e-14"))
    else:
        assert row["ListPrice"] == price


def test_timestamps_are_truncated_never_rounded(target: StoreTarget) -> None:
    key = unique_prefix()
    record = {"ListingKey": key, "ModificationTimestamp": "2024-12-31T23:59:59.9999999Z",
              "PhotosChangeTimestamp": "2024-12-31T18:59:59.9999995-05:00"}
    RecordLoader.open(target.engine, "Property", schema=target.schema).load([record])
    row = stored(target, [key])[key]
    last_microsecond = datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert row["ModificationTimestamp"] == last_microsecond
    assert row["PhotosChangeTimestamp"] == last_microsecond
    assert row["etl_mod_ticks"] % 10 == 9  # the seventh digit is kept exactly


def test_multi_valued_fields_have_one_form(target: StoreTarget) -> None:
    """IsFlags arrives comma-separated (Trestle) or as an array (DD 2.0): one JSON array."""
    key = unique_prefix()
    record = {"ListingKey": key, "ModificationTimestamp": "2024-01-01T00:00:00Z",
              "Appliances": "Dryer,Oven", "InteriorFeatures": ["Bar", "CeilingFans"],
              "ListingContractDate": "2024-02-29", "NewConstructionYN": False}
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               )
    loader.load([record])
    assert decode_json(stored(target, [key])[key]["etl_record"]) == record
    layout = loader.layout
    assert "Appliances" not in layout.columns  # not a commonly queried field
    # The typed form, when a multi-valued field is promoted, is a JSON array of names.
    from trestle_tasks.store.transform import field_converter

    flags = field_converter(PROPERTY.field("Appliances"))  # type: ignore[arg-type]
    collection = field_converter(PROPERTY.field("InteriorFeatures"))  # type: ignore[arg-type]
    assert flags("Dryer,Oven") == '["Dryer","Oven"]' == collection(["Dryer", "Oven"])
    assert flags("") == "[]"
    assert field_converter(PROPERTY.field("ListingContractDate"))(  # type: ignore[arg-type]
        "2024-02-29") == date(2024, 2, 29)
