"""Issue 22, item 10: field names and facets in `$metadata` that the fast decode path or
the DDL cannot take. Served over HTTP by a hostile stand-in; real MariaDB, PostgreSQL,
SQLite. Before: a field named with `"`, `\\` or a control character failed every sync of
its resource (msgspec refuses such a `rename`), and a negative MaxLength, Precision or
Scale failed `migrate` (DDL) for the whole resource."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store_data import SMALL_EDMX, unique_prefix
from tests.store_fixtures import close_target, open_target
from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.store.jsontext import decode_json
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.migrate import migrate
from trestle_tasks.store.naming import RECORD_COLUMN
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.trestle.query import ODataQuery

from .poison_server import QUICK_RETRY, PoisonServer, page_body, poison_server

pytestmark = pytest.mark.integration

# XML escapes: a quote, a backslash, a tab and a line feed in declared field names.
QUOTE, BACKSLASH, TAB, NEWLINE = 'Bad"Quote', "Back\\Slash", "Tab\tName", "Line\nFeed"
HOSTILE_FIELDS = """
    <Property Name="Bad&quot;Quote" Type="Edm.String" MaxLength="20"/>
    <Property Name="Back\\Slash" Type="Edm.Int32"/>
    <Property Name="Tab&#9;Name" Type="Edm.Boolean"/>
    <Property Name="Line&#10;Feed" Type="Edm.String"/>
    <Property Name="NegativeLength" Type="Edm.String" MaxLength="-5"/>
    <Property Name="NegativePrecision" Type="Edm.Decimal" Precision="-3" Scale="2"/>
    <Property Name="NegativeScale" Type="Edm.Decimal" Precision="10" Scale="-2"/>
    <Property Name="HugePrecision" Type="Edm.Decimal" Precision="5000" Scale="2"/>
"""
EDMX = SMALL_EDMX.replace(
    '<Property Name="City" Type="Edm.String" MaxLength="50"/>',
    '<Property Name="City" Type="Edm.String" MaxLength="50"/>' + HOSTILE_FIELDS, 1)


@pytest.fixture
def server() -> Iterator[PoisonServer]:
    with poison_server() as running:
        yield running


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb", "postgresql"])
def test_hostile_field_names_and_facets_migrate_and_load_through_the_checked_path(
        server: PoisonServer, tmp_path: Any, dialect: str,
        caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    good: list[dict[str, Any]] = [
        {"ListingKey": f"{prefix}-{i}", "City": "Ville", QUOTE: "quoted", BACKSLASH: i,
         TAB: True, NEWLINE: "line", "NegativeLength": "x" * 300,
         "NegativePrecision": Decimal("12.5"), "NegativeScale": Decimal("1234.5678"),
         "HugePrecision": Decimal("123456789012345678901234567890.25"),
         "ModificationTimestamp": "2024-01-01T00:00:00Z"} for i in range(3)]
    bad = [{**good[0], "ListingKey": f"{prefix}-long", QUOTE: "y" * 21},
           {**good[0], "ListingKey": f"{prefix}-type", BACKSLASH: "seven"}]

    def answer(path: str) -> bytes:
        if path.endswith("$metadata"):
            return EDMX.encode()
        return page_body([good[0], bad[0], good[1], bad[1], good[2]])

    server.answer = answer
    client = server.client()
    with caplog.at_level(logging.WARNING, "trestle_tasks.edm.metadata"):
        metadata = parse_metadata(client.get_metadata())
    warned = caplog.text
    for facet in ("MaxLength=-5", "Precision=-3", "Scale=-2", "Precision=5000"):
        assert facet in warned
    target = open_target(dialect, tmp_path)
    try:
        migrate(target.engine, metadata, ("Property",), schema=target.schema)
        loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                                   retry=QUICK_RETRY)
        result = loader.load(client.get_page(ODataQuery("Property")).records)
        assert (result.upserted, result.rejected) == (3, 2)
        layout = loader.layout
        table = layout.table
        with target.engine.connect() as conn:
            documents = conn.execute(sa.select(
                table.c[layout.key_column], table.c[RECORD_COLUMN])).all()
            rejects = bookkeeping(target.schema)["etl_rejects"]
            rejected = conn.execute(sa.select(rejects.c.record_key, rejects.c.field)).all()
        stored = {key: decode_json(document) for key, document in documents}
        assert stored == {r["ListingKey"]: r for r in good}
        assert sorted(rejected) == [(f"{prefix}-long", QUOTE), (f"{prefix}-type", BACKSLASH)]
    finally:
        close_target(target)
