"""The typed view `<table>_fields`: for any record valid under the metadata, every column
of the view equals the value received converted to its declared type (the conversion the
loader applies to typed columns), and every promoted column equals what the view computes
from the stored document for that field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.store_data import PROPERTY, SMALL, records, unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target  # noqa: F401
from trestle_tasks.edm.metadata import FieldSpec, ResourceSpec
from trestle_tasks.store.jsontext import decode_json
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.migrate import migrate
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.schema import ResourceLayout, sql_type
from trestle_tasks.store.transform import field_converter
from trestle_tasks.store.views import select_sql, view_columns, view_fields, view_table

# One promoted field of every kind the defaults do not already cover.
PROMOTED = ("Latitude", "LotSizeAcres", "Appliances", "InteriorFeatures", "Tags",
            "ListingContractDate", "NewConstructionYN", "TaxAnnualAmount", "Stories",
            "X_Location", "PublicRemarks")


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate(module_store_target.engine, SMALL, ["Property"], schema=module_store_target.schema,
            promote={"Property": PROMOTED})
    return module_store_target


def expected_value(spec: FieldSpec, value: Any) -> Any:
    return None if value is None else field_converter(spec)(value)


def assert_same(target: StoreTarget, spec: FieldSpec, got: Any, want: Any, where: str) -> None:
    message = f"{where}: {spec.name} ({spec.edm_type})"
    if want is None or got is None:
        assert got is None and want is None, (message, got, want)
        return
    column_type = sql_type(spec)
    if spec.is_multi_valued or spec.kind in ("geography", "complex"):
        assert decode_json(got) == decode_json(want), message  # JSON text, any spacing
    elif spec.kind == "float":
        assert float(got) == pytest.approx(float(want), rel=1e-15), message
    elif spec.kind == "decimal" and target.dialect == "sqlite":
        # SQLite has no exact decimals: NUMERIC, like the typed column (the document is
        # exact to the digit).
        assert Decimal(str(got)) == pytest.approx(Decimal(str(want)), rel=Decimal("1e-14"),
                                                  abs=Decimal("1e-30")), message
    else:
        assert got == want, (message, got, want, column_type)


def typed_rows(target: StoreTarget, layout: ResourceLayout, sql: str, keys: list[str]
               ) -> dict[str, dict[str, Any]]:
    """Rows of a view-shaped SELECT read with the view's declared types."""
    table = view_table(layout)
    names = view_columns(layout)
    key = names[layout.key_field.name]
    text = sa.text(sql).columns(*(sa.column(c.name, c.type) for c in table.columns))
    query = sa.select(text.subquery("v")).where(sa.column(key).in_(keys))
    with target.engine.connect() as conn:
        return {row[key]: dict(row) for row in conn.execute(query).mappings()}


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(records(), min_size=1, max_size=6, unique_by=lambda r: r["ListingKey"]))
def test_every_view_column_is_the_value_received_in_its_type(
        target: StoreTarget, batch: list[dict[str, Any]]) -> None:
    prefix = unique_prefix()
    for record in batch:
        record["ListingKey"] = (prefix + record["ListingKey"])[:64]
    keys = [r["ListingKey"] for r in batch]
    if len(set(keys)) != len(keys):
        return
    result = RecordLoader.open(target.engine, "Property", schema=target.schema).load(batch)
    assert result.rejected == 0, [(r.field, r.reason, r.detail) for r in result.rejections]
    layout = layout_of(target.engine, "Property", target.schema)
    assert set(PROMOTED) <= set(layout.columns)
    names = view_columns(layout)
    dialect = target.engine.dialect
    through_view = typed_rows(target, layout, select_sql(layout, dialect), keys)
    from_documents = typed_rows(target, layout,
                                select_sql(layout, dialect, from_columns=False), keys)
    view = view_table(layout)
    with target.engine.connect() as conn:  # the view as created, by its name
        created = set(conn.execute(
            sa.select(view.c.ListingKey).where(view.c.ListingKey.in_(keys))).scalars())
    assert created == set(keys)
    for record in batch:
        key = record["ListingKey"]
        for spec in view_fields(layout):
            want = expected_value(spec, record.get(spec.name))
            column = names[spec.name]
            assert_same(target, spec, through_view[key][column], want, "view")
            # Promoted (and default) typed columns equal the view's reading of the document.
            assert_same(target, spec, through_view[key][column],
                        from_documents[key][column], "column vs document")


def test_deleted_rows_leave_the_view_and_stay_in_the_table(target: StoreTarget) -> None:
    key = unique_prefix()
    RecordLoader.open(target.engine, "Property", schema=target.schema).load(
        [{"ListingKey": key, "ModificationTimestamp": "2024-01-01T00:00:00Z"}])
    layout = layout_of(target.engine, "Property", target.schema)
    view = view_table(layout)
    with target.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(view)
                            .where(view.c.ListingKey == key)).scalar_one() == 1
        conn.execute(sa.update(layout.table).where(layout.table.c.ListingKey == key)
                     .values(deleted_at=sa.func.current_timestamp()))
        assert conn.execute(sa.select(sa.func.count()).select_from(view)
                            .where(view.c.ListingKey == key)).scalar_one() == 0


def test_a_field_that_leaves_metadata_leaves_the_view(target: StoreTarget) -> None:
    spec = SMALL.resource("Property")
    narrower = ResourceSpec(
        name=spec.name, entity_type=spec.entity_type, key=spec.key,
        fields=tuple(f for f in spec.fields if f.name not in ("PublicRemarks", "Latitude")),
        navigations=spec.navigations)
    from trestle_tasks.edm.metadata import ServiceMetadata

    key = unique_prefix()
    record = {"ListingKey": key, "ModificationTimestamp": "2024-01-01T00:00:00Z",
              "PublicRemarks": "kept 😀", "Latitude": Decimal("1.50000000"), "City": "Austin"}
    RecordLoader.open(target.engine, "Property", schema=target.schema).load([record])
    try:
        report = migrate(target.engine, ServiceMetadata(resources={"Property": narrower},
                                                        enums={}),
                         ["Property"], schema=target.schema, promote={"Property": PROMOTED})
        assert report.undeclared_fields == {"Property": ["Latitude", "PublicRemarks"]}
        layout = layout_of(target.engine, "Property", target.schema)
        view = view_table(layout)
        assert "PublicRemarks" not in view.c and "City" in view.c
        with target.engine.connect() as conn:
            row = conn.execute(sa.select(view).where(view.c.ListingKey == key)).mappings().one()
            stored = conn.execute(sa.select(layout.table.c.etl_record).where(
                layout.table.c.ListingKey == key)).scalar_one()
        assert row["City"] == "Austin"
        assert decode_json(stored) == record
    finally:  # the module's other tests expect the full metadata
        migrate(target.engine, SMALL, ["Property"], schema=target.schema,
                promote={"Property": PROMOTED})


def test_view_names_every_declared_field() -> None:
    from trestle_tasks.store.schema import plan_layout

    layout = plan_layout(PROPERTY)
    assert list(view_columns(layout)) == [f.name for f in view_fields(layout)]
    assert {f.name for f in view_fields(layout)} == {f.name for f in PROPERTY.fields}
    assert view_table(layout).name == "property_fields"
