"""Wide rows: the full Trestle metadata at maximum field lengths, and RESO DD 2.0.

DESIGN.md: one column per field of Trestle's Property fails on MariaDB with ERROR 1118
(first test, which shows it on the real server). The store's layout holds every field at
its declared maximum, with nothing truncated and nothing rejected, and export gives back
exactly what was loaded. STORE_WIDE_RECORDS sets how many Property records to load
(the acceptance run uses 10,000; the default keeps the suite fast).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench.wide_records import wide_records
from tests.conftest import RESO_DD_METADATA, TRESTLE_2019_METADATA
from tests.store_fixtures import (
    StoreTarget,
    close_target,
    count_rows,
    open_target,
    store_target,  # noqa: F401
)
from trestle_tasks.store.export import iter_documents, write_ndjson
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.migrate import migrate
from trestle_tasks.store.schema import sql_type
from trestle_tasks.trestle.metadata import ServiceMetadata, parse_metadata

pytestmark = pytest.mark.integration

WIDE_RECORDS = int(os.environ.get("STORE_WIDE_RECORDS", "300"))
CONTRACT_RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")


@pytest.fixture(scope="module")
def trestle() -> ServiceMetadata:
    return parse_metadata(TRESTLE_2019_METADATA.read_bytes())


@pytest.fixture(scope="module")
def reso_dd() -> ServiceMetadata:
    return parse_metadata(RESO_DD_METADATA.read_bytes())


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[StoreTarget]:
    target = open_target("mariadb", tmp_path)
    yield target
    close_target(target)


def test_one_column_per_field_does_not_fit_a_mariadb_row(mariadb: StoreTarget,
                                                         trestle: ServiceMetadata) -> None:
    """Why the layout exists: ERROR 1118 as VARCHARs, and again with TEXT for long ones."""
    spec = trestle.resource("Property")
    for long_as_text in (False, True):
        columns = []
        for field in spec.fields:
            column_type = sql_type(field)
            if not long_as_text and field.kind == "string" and field.max_length:
                column_type = sa.String(field.max_length)
            columns.append(sa.Column(field.name, column_type))
        table = sa.Table(f"naive_{int(long_as_text)}", sa.MetaData(schema=mariadb.schema),
                         *columns, mysql_charset="utf8mb4", mysql_row_format="DYNAMIC")
        with pytest.raises(sa.exc.OperationalError) as caught:
            table.create(mariadb.engine)
        assert caught.value.orig.args[0] == 1118  # Row size too large


def test_trestle_property_at_max_length_loads_and_exports_unchanged(
    mariadb: StoreTarget, trestle: ServiceMetadata, tmp_path: Path
) -> None:
    report = migrate(mariadb.engine, trestle, CONTRACT_RESOURCES, schema=mariadb.schema)
    assert sorted(report.created_tables) == sorted(
        ["property", "member", "office", "open_house", "media"])
    spec = trestle.resource("Property")
    loader = RecordLoader.open(mariadb.engine, "Property", schema=mariadb.schema)
    result = loader.load(wide_records(spec, WIDE_RECORDS))
    assert (result.loaded, result.rejected) == (WIDE_RECORDS, 0)
    assert count_rows(mariadb, "property") == WIDE_RECORDS

    # Export through the NDJSON writer, then compare record by record in key order.
    out = tmp_path / "property.ndjson"
    with out.open("w", encoding="utf-8") as handle:
        assert write_ndjson(mariadb.engine, "Property", handle,
                            schema=mariadb.schema) == WIDE_RECORDS
    with out.open(encoding="utf-8") as handle:
        for line, expected in zip(handle, wide_records(spec, WIDE_RECORDS), strict=True):
            assert decode_json(line) == expected
            assert line.rstrip("\n") == encode_json(expected)

    # The commonly queried fields are typed columns under their RESO names, with indexes.
    inspector = sa.inspect(mariadb.engine)
    columns = {c["name"]: c for c in inspector.get_columns("property", schema=mariadb.schema)}
    for name in ("ListingKey", "ListingId", "StandardStatus", "ListPrice", "City",
                 "PostalCode", "BedroomsTotal", "BathroomsTotalInteger",
                 "ModificationTimestamp", "PhotosChangeTimestamp"):
        assert name in columns
    assert str(columns["ListPrice"]["type"]).startswith("DECIMAL(14, 2)")
    assert "DATETIME" in str(columns["ModificationTimestamp"]["type"])
    indexed = {tuple(i["column_names"]) for i in
               inspector.get_indexes("property", schema=mariadb.schema)}
    assert ("City",) in indexed and ("ModificationTimestamp",) in indexed
    with mariadb.engine.connect() as conn:
        price, city = conn.execute(sa.text(
            f"SELECT ListPrice, City FROM {mariadb.table('property')} LIMIT 1")).one()
    first = next(wide_records(spec, 1))
    assert price == first["ListPrice"] and city == first["City"]


def test_every_trestle_resource_loads_on_every_dialect(store_target: StoreTarget,  # noqa: F811
                                                       trestle: ServiceMetadata) -> None:
    check_every_resource(store_target, trestle, records_per_resource=3)


def test_every_reso_dd_resource_loads_on_every_dialect(store_target: StoreTarget,  # noqa: F811
                                                       reso_dd: ServiceMetadata) -> None:
    assert len(reso_dd.resources) == 41
    check_every_resource(store_target, reso_dd, records_per_resource=2)


def check_every_resource(target: StoreTarget, metadata: ServiceMetadata,
                         records_per_resource: int) -> None:
    report = migrate(target.engine, metadata, schema=target.schema)
    assert len(report.created_tables) == len(metadata.resources)
    assert not migrate(target.engine, metadata, schema=target.schema).changed  # idempotent
    for name, spec in metadata.resources.items():
        batch = list(wide_records(spec, records_per_resource))
        result = RecordLoader.open(target.engine, name, schema=target.schema).load(batch)
        assert (result.loaded, result.rejected) == (len(batch), 0), (
            name, [(r.field, r.reason, r.detail) for r in result.rejections])
        exported: list[Any] = [decode_json(t) for t in iter_documents(
            target.engine, name, schema=target.schema)]
        assert exported == batch, name
