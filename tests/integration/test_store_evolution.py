"""Schema evolution: fields appear in `$metadata` later, or in records before the metadata
declares them, or leave it; migrate adds what is missing without a rebuild, backfills new
typed columns from the stored documents, loses no row, and is idempotent."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.store_data import SMALL_EDMX
from tests.store_fixtures import StoreTarget, count_rows, store_target  # noqa: F401
from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.store.catalog import read_catalog
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.migrate import migrate
from trestle_tasks.store.schema import bookkeeping

V2 = parse_metadata(SMALL_EDMX)
V1 = parse_metadata(
    SMALL_EDMX.replace('<Property Name="City" Type="Edm.String" MaxLength="50"/>', "")
    .replace('<Property Name="PublicRemarks" Type="Edm.String" MaxLength="4000"/>', "")
)
V3 = parse_metadata(SMALL_EDMX.replace(
    '<Property Name="ListingId" Type="Edm.String" MaxLength="32"/>', ""))


def record(i: int, **extra: Any) -> dict[str, Any]:
    return {"ListingKey": f"L{i:03d}", "ListingId": f"ID{i}",
            "ModificationTimestamp": f"2024-01-01T00:00:{i % 60:02d}.1234567Z", **extra}


def field_map(target: StoreTarget) -> dict[str, dict[str, Any]]:
    table = bookkeeping(target.schema)["etl_field_map"]
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.resource == "Property")).mappings()
        return {r["field_name"]: dict(r) for r in rows}


def columns(target: StoreTarget) -> set[str]:
    return {c["name"] for c in sa.inspect(target.engine).get_columns("property",
                                                                      schema=target.schema)}


def test_fields_added_later_seen_early_and_removed(store_target: StoreTarget  # noqa: F811
                                                   ) -> None:
    target = store_target
    migrate(target.engine, V1, ["Property"], schema=target.schema)
    assert "City" not in columns(target)

    # Records carry City and PublicRemarks before the metadata declares them.
    early = [record(i, City=f"Town {i}", PublicRemarks=f"remarks {i}") for i in range(20)]
    result = RecordLoader.open(target.engine, "Property", schema=target.schema).load(early)
    assert (result.upserted, result.rejected) == (20, 0)
    assert set(result.undeclared_fields) == {"City", "PublicRemarks"}
    tracked = field_map(target)
    assert not tracked["City"]["declared"] and tracked["City"]["storage"] == "document"

    # The metadata now declares both: City is a typed column, added and backfilled.
    report = migrate(target.engine, V2, ["Property"], schema=target.schema)
    assert report.added_columns == {"property": ["City"]}
    assert report.backfilled_rows == {"property": 20}
    assert report.new_fields == {"Property": ["City", "PublicRemarks"]}
    assert "City" in columns(target)
    with target.engine.connect() as conn:
        cities = dict(conn.execute(sa.text(
            f'SELECT {q(target, "ListingKey")}, {q(target, "City")} '
            f'FROM {target.table("property")}')).all())
    assert cities == {r["ListingKey"]: r["City"] for r in early}
    tracked = field_map(target)
    assert tracked["City"]["declared"] and tracked["City"]["column_name"] == "City"
    assert tracked["PublicRemarks"]["declared"] and tracked["PublicRemarks"]["storage"] == \
        "document"
    assert not migrate(target.engine, V2, ["Property"], schema=target.schema).changed

    # ListingId leaves the metadata: its column stays (undeclared), no row is lost, and
    # records still carrying it keep it in the document.
    report = migrate(target.engine, V3, ["Property"], schema=target.schema)
    assert report.undeclared_fields == {"Property": ["ListingId"]}
    assert "ListingId" in columns(target)
    with target.engine.connect() as conn:
        catalog = read_catalog(conn, "Property", target.schema)
    assert catalog.layout.retired == {"ListingId": "ListingId"}
    late = [record(100 + i, City="Later") for i in range(5)]
    RecordLoader.open(target.engine, "Property", schema=target.schema).load(late)
    assert count_rows(target, "property") == 25
    exported = {r["ListingKey"]: r for r in export_records(target.engine, "Property",
                                                           schema=target.schema)}
    assert [exported[r["ListingKey"]] for r in early + late] == early + late
    assert not migrate(target.engine, V3, ["Property"], schema=target.schema).changed


def test_promoting_a_field_later_adds_and_backfills_its_column(
    store_target: StoreTarget,  # noqa: F811
) -> None:
    target = store_target
    migrate(target.engine, V2, ["Property"], schema=target.schema)
    rows = [record(i, PublicRemarks="x" * 4000, LotSizeAcres=1) for i in range(7)]
    RecordLoader.open(target.engine, "Property", schema=target.schema).load(rows)
    report = migrate(target.engine, V2, ["Property"], schema=target.schema,
                     promote={"Property": ["PublicRemarks"]})
    assert report.added_columns == {"property": ["PublicRemarks"]}
    assert report.backfilled_rows == {"property": 7}
    with target.engine.connect() as conn:
        lengths = conn.execute(sa.text(
            f'SELECT {q(target, "PublicRemarks")} FROM {target.table("property")}')).scalars()
        assert [len(v) for v in lengths] == [4000] * 7
    # New loads fill it too.
    RecordLoader.open(target.engine, "Property", schema=target.schema).load(
        [record(50, PublicRemarks="fresh")])
    with target.engine.connect() as conn:
        assert conn.execute(sa.text(
            f'SELECT {q(target, "PublicRemarks")} FROM {target.table("property")} '
            f"WHERE {q(target, 'ListingKey')} = 'L050'")).scalar_one() == "fresh"


def test_migrate_reports_resources_the_metadata_lacks(store_target: StoreTarget  # noqa: F811
                                                      ) -> None:
    report = migrate(store_target.engine, V2, ["Property", "Teams"],
                     schema=store_target.schema)
    assert report.missing_resources == ["Teams"]
    assert report.created_tables == ["property"]


def q(target: StoreTarget, name: str) -> str:
    return target.engine.dialect.identifier_preparer.quote(name)


@pytest.mark.parametrize("resource", ["EventLog"])
def test_integer_keys_and_no_modification_timestamp(store_target: StoreTarget,  # noqa: F811
                                                    resource: str) -> None:
    """EventLog has an Int64 key and no ModificationTimestamp: the last write wins."""
    migrate(store_target.engine, V2, [resource], schema=store_target.schema)
    loader = RecordLoader.open(store_target.engine, resource, schema=store_target.schema)
    loader.load([{"EventSequence": 2**62, "EventType": "first"},
                 {"EventSequence": 1, "EventType": "one"}])
    loader.load([{"EventSequence": 2**62, "EventType": "second"}])
    exported = list(export_records(store_target.engine, resource, schema=store_target.schema))
    assert exported == [{"EventSequence": 1, "EventType": "one"},
                        {"EventSequence": 2**62, "EventType": "second"}]
