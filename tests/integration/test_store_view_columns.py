"""Which view column holds which field (issue 22, item 14): a field whose name no database
could take as a column (over 63 characters, punctuation, a case twin such as
HOAName/HoaName, which MariaDB cannot tell apart) is shown in `<table>_fields` under a
shortened name. Before, nothing said which: now etl_field_map.view_column records the view
column of every declared field, migrate's output lists the renamed ones, and a database
made before gets the column from the next migrate (or sync)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from tests.edmx_builder import STRING, edmx
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.cli.render import describe_migration
from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.store import Store
from trestle_tasks.store.views import view_columns

LONG = "TheVeryLongCustomFieldNameThatSomeMlsInventedForItsOwnPurposes_Over64"
NAMES = ("HOAName", "HoaName", LONG, "Pct%Done", "City")
DOCUMENT = edmx({"Thing": [(name, STRING) for name in NAMES]})


def recorded(target: StoreTarget) -> dict[str, str | None]:
    field_map = bookkeeping(target.schema)["etl_field_map"]
    with target.engine.connect() as conn:
        return dict(conn.execute(sa.select(field_map.c.field_name, field_map.c.view_column)
                                 .where(field_map.c.resource == "Thing")).tuples().all())


def view_values(target: StoreTarget) -> dict[str, object]:
    """The view's one row by its actual column names, as the database reports them."""
    with target.engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT * FROM {target.table('thing_fields')}")).one()
    return dict(row._mapping)


def store_one(target: StoreTarget) -> dict[str, str]:
    record = {"ThingKey": "k1", "ModificationTimestamp": "2024-01-01T00:00:00Z",
              **{name: f"value of {name}" for name in NAMES}}
    layout = layout_of(target.engine, "Thing", target.schema)
    with target.engine.begin() as conn:
        conn.execute(sa.insert(layout.table).values({
            "ThingKey": "k1", "ModificationTimestamp": datetime(2024, 1, 1, tzinfo=UTC),
            "etl_record": encode_json(record), "etl_mod_ticks": 1,
            "etl_loaded_at": datetime.now(UTC)}))
    return record


def test_every_field_s_view_column_is_recorded_and_renames_are_reported(
        store_target: StoreTarget) -> None:  # noqa: F811
    target = store_target
    report = Store(target.engine, schema=target.schema).migrate(DOCUMENT, ["Thing"])
    record = store_one(target)
    columns = recorded(target)
    values = view_values(target)
    # Every declared field: its recorded column is a column of the view, with its value.
    for name in ("ThingKey", *NAMES):
        column = columns[name]
        assert column is not None and values[column] == record[name], (name, column)
    assert columns["HOAName"] == "HOAName" and columns["City"] == "City"
    renamed = {name: columns[name] for name in ("HoaName", LONG, "Pct%Done")}
    assert all(column != name for name, column in renamed.items())
    assert report.renamed_view_columns == {"thing_fields": renamed}
    with target.engine.connect() as conn:  # README's query ("Querying the data")
        found = conn.execute(sa.text(
            "SELECT resource, field_name, view_column, view_column <> field_name AS renamed "
            f"FROM {target.table('etl_field_map')} WHERE view_column IS NOT NULL "
            "ORDER BY renamed DESC, resource, field_name")).tuples().all()
    assert [row[:3] for row in found if row[3]] == sorted(
        ("Thing", name, column) for name, column in renamed.items())
    assert len(found) == len(NAMES) + 2  # with the key and ModificationTimestamp
    said = "\n".join(describe_migration(report))
    for name, column in renamed.items():
        assert f"{name!r} as {column}" in said


def test_a_database_made_before_gets_the_view_columns_from_migrate(
        store_target: StoreTarget) -> None:  # noqa: F811
    target = store_target
    store = Store(target.engine, schema=target.schema)
    store.migrate(DOCUMENT, ["Thing"])
    with target.engine.begin() as conn:  # the previous version's etl_field_map
        conn.exec_driver_sql(
            f"ALTER TABLE {target.table('etl_field_map')} DROP COLUMN view_column")
    report = store.migrate(DOCUMENT, ["Thing"])
    assert report.added_columns["etl_field_map"] == ["view_column"]
    columns = recorded(target)
    assert set(columns) == {"ThingKey", "ModificationTimestamp", *NAMES}
    assert columns["HoaName"] not in (None, "HoaName") and columns["City"] == "City"


def test_a_field_keeps_its_view_column_when_metadata_reorders_its_case_twin(
        store_target: StoreTarget) -> None:  # noqa: F811
    """HOAName first gets `HOAName`; a later $metadata listing HoaName first must not hand
    `HOAName`'s column to HoaName (a user's query would read the other field)."""
    target = store_target
    store = Store(target.engine, schema=target.schema)
    store.migrate(DOCUMENT, ["Thing"])
    first = recorded(target)
    reordered = edmx({"Thing": [(name, STRING) for name in reversed(NAMES)]})
    report = store.migrate(reordered, ["Thing"])
    assert recorded(target) == first
    assert report.renamed_view_columns["thing_fields"]["HoaName"] == first["HoaName"]
    record = store_one(target)
    values = view_values(target)
    assert values["HOAName"] == record["HOAName"]
    assert values[first["HoaName"]] == record["HoaName"]
    layout = layout_of(target.engine, "Thing", target.schema)  # what readers are told
    assert view_columns(layout)["HoaName"] == first["HoaName"]


def test_a_database_not_yet_upgraded_still_reads_its_catalog(
        store_target: StoreTarget) -> None:  # noqa: F811
    target = store_target
    Store(target.engine, schema=target.schema).migrate(DOCUMENT, ["Thing"])
    with target.engine.begin() as conn:
        conn.exec_driver_sql(
            f"ALTER TABLE {target.table('etl_field_map')} DROP COLUMN view_column")
    layout = layout_of(target.engine, "Thing", target.schema)  # export, status: no migrate
    assert layout.key_column == "ThingKey" and layout.view_taken == {}
