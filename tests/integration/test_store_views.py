"""The typed views and STORE_INDEXED_FIELDS on real databases: promotion and demotion on a
database holding rows change no stored record and ask Trestle for nothing; the README's
queries run as written on the demo database (SQLite) and on MariaDB; on MariaDB the map
query on promoted Latitude/Longitude uses their index."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import REPO_ROOT
from tests.store_data import SMALL_EDMX
from tests.store_fixtures import StoreTarget, close_target, open_target, store_target  # noqa: F401
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.schema import index_name
from trestle_tasks.store.store import Store
from trestle_tasks.store.views import view_table
from trestle_tasks.sync.schema import ensure_tables

PROMOTED = {"Property": ("Latitude", "LotSizeAcres", "Appliances")}


class NoTrestle:
    """A client that fails the test if anything asks Trestle for anything."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        self.calls += 1
        raise AssertionError(f"Trestle was asked for something: {name}")


def documents(store: Store) -> dict[str, str]:
    table = layout_of(store.engine, "Property", store.schema).table
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(table.c.ListingKey, table.c.etl_record)).all())


def index_names(store: Store) -> set[str]:
    return {i["name"] for i in sa.inspect(store.engine).get_indexes("property",
                                                                    schema=store.schema)}


def test_promotion_and_demotion_keep_every_record_and_ask_nothing(
    store_target: StoreTarget,  # noqa: F811
) -> None:
    store = Store(store_target.engine, schema=store_target.schema)
    store.migrate(SMALL_EDMX, ["Property"])
    rows = [{"ListingKey": f"K{i:03d}", "ModificationTimestamp": "2024-01-01T00:00:00Z",
             "Latitude": Decimal(f"{i}.12345678"), "LotSizeAcres": Decimal("0.25") * i,
             "Appliances": "Dryer,Oven" if i % 2 else ["Washer"], "City": "Austin 😀"}
             for i in range(1, 41)]
    assert store.upsert("Property", rows).upserted == 40
    before = documents(store)
    trestle = NoTrestle()

    store.promote = dict(PROMOTED)
    assert store.pending_promotions(["Property"]) == ["Property"]
    ensure_tables(store, trestle, ["Property"])  # type: ignore[arg-type]
    layout = layout_of(store.engine, "Property", store.schema)
    assert set(PROMOTED["Property"]) <= set(layout.columns)
    assert index_name("property", "Latitude") in index_names(store)
    view = view_table(layout)
    with store.engine.connect() as conn:
        got = conn.execute(sa.select(layout.table.c.ListingKey, layout.table.c.Latitude,
                                     view.c.Appliances)
                           .join_from(layout.table, view,
                                      view.c.ListingKey == layout.table.c.ListingKey)
                           .order_by(layout.table.c.ListingKey)).all()
    assert [(k, Decimal(str(v)) if store_target.dialect == "sqlite" else v)
            for k, v, _a in got] == [(r["ListingKey"], r["Latitude"]) for r in rows]
    assert [a for _k, _v, a in got] == ['["Dryer","Oven"]' if i % 2 else '["Washer"]'
                                        for i in range(1, 41)]
    assert documents(store) == before
    assert store.pending_promotions(["Property"]) == []

    store.promote = {}
    ensure_tables(store, trestle, ["Property"])  # type: ignore[arg-type]
    layout = layout_of(store.engine, "Property", store.schema)
    assert not set(PROMOTED["Property"]) & set(layout.columns)
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("property",
                                                                       schema=store.schema)}
    assert not {"Latitude", "LotSizeAcres", "Appliances"} & columns
    assert index_name("property", "Latitude") not in index_names(store)
    assert documents(store) == before
    view = view_table(layout)  # the view still has the fields, now from the documents
    with store.engine.connect() as conn:
        latitudes = conn.execute(sa.select(view.c.Latitude).order_by(view.c.ListingKey)
                                 ).scalars().all()
    assert [Decimal(str(v)) for v in latitudes] == [r["Latitude"] for r in rows]
    assert trestle.calls == 0


# --- the README's queries -------------------------------------------------------------


def readme_queries() -> list[str]:
    text = (REPO_ROOT / "docs" / "data.md").read_text()
    section = text[text.index("## Querying the data"):]
    end = section.find("\n## ", 5)
    section = section if end < 0 else section[:end]
    queries = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(queries) >= 4
    return queries


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    subprocess.run([sys.executable, "-m", "trestle_tasks", "demo", "--records", "200",
                    "--database", str(path)], check=True, capture_output=True, timeout=300,
                   cwd=tmp_path_factory.getbasetemp())
    return path


def run_queries(engine: sa.Engine) -> list[int]:
    counts: list[int] = []
    with engine.connect() as conn:
        for query in readme_queries():
            counts.append(len(conn.exec_driver_sql(query.replace("%", "%%")).all()))
    return counts


def test_readme_queries_run_on_the_demo_database(demo_database: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{demo_database}")
    try:
        counts = run_queries(engine)
    finally:
        engine.dispose()
    assert all(counts), counts  # every query finds something in the demo's listings


@pytest.mark.integration
def test_readme_queries_run_on_mariadb_and_the_map_uses_its_index(
        demo_database: Path, tmp_path: Path) -> None:
    demo = Store.from_url(f"sqlite:///{demo_database}")
    target = open_target("mariadb", tmp_path)
    try:
        store = Store(target.engine, schema=target.schema,
                      promote={"Property": ("Latitude", "Longitude")})
        resources = demo.resources()
        store.migrate(demo.stored_metadata(resources), resources)
        for resource in resources:
            store.upsert(resource, demo.records(resource))
        assert store.count("Property") == demo.count("Property")
        url = target.engine.url.set(database=target.schema)
        engine = sa.create_engine(url)
        try:
            assert all(run_queries(engine))
            map_query = next(q for q in readme_queries() if "Latitude BETWEEN" in q)
            with engine.connect() as conn:
                plan = conn.exec_driver_sql("EXPLAIN " + map_query).mappings().all()
        finally:
            engine.dispose()
        used = " ".join(f"{row['key']} {row['possible_keys']}" for row in plan)
        assert index_name("property", "Latitude") in used or \
            index_name("property", "Longitude") in used, plan
        # The chosen key (`range|filter`: one index, the other as a rowid filter).
        chosen = {k for row in plan for k in str(row["key"]).split("|")}
        assert chosen & {index_name("property", "Latitude"),
                         index_name("property", "Longitude")}, plan
    finally:
        demo.dispose()
        close_target(target)


def test_a_trestle_wide_property_gets_a_full_view(store_target: StoreTarget  # noqa: F811
                                                   ) -> None:
    """588 fields: one column each would not fit a MariaDB row; the view has them all."""
    from tests.wide_metadata import TRESTLE_PROPERTY_FIELDS, trestle_metadata_xml

    store = Store(store_target.engine, schema=store_target.schema)
    store.migrate(trestle_metadata_xml(), ["Property"])
    store.upsert("Property", [{"ListingKey": "K",
                               "ModificationTimestamp": "2024-01-01T00:00:00.1234567Z"}])
    view = view_table(layout_of(store.engine, "Property", store.schema))
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(view)).mappings().one()
    assert len(row) == len(view.columns) == TRESTLE_PROPERTY_FIELDS
    assert row["ModificationTimestamp"].microsecond == 123456
