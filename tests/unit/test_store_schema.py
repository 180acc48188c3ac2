"""Layout and column types, compiled for each dialect without a database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable

from tests.store_data import PROPERTY, SMALL
from tests.wide_metadata import trestle_metadata_xml
from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.store.naming import RESERVED_COLUMNS
from trestle_tasks.store.schema import (
    TYPED_COLUMNS_BYTE_BUDGET,
    inline_bytes,
    plan_layout,
    promoted_fields,
    sql_type,
)


def mariadb_dialect() -> mysql.dialect:
    dialect = mysql.dialect()
    dialect.is_mariadb = True
    return dialect


DIALECTS = {"mariadb": mariadb_dialect(), "mysql": mysql.dialect(),
            "postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}


def ddl(name: str) -> str:
    layout = plan_layout(PROPERTY)
    return str(CreateTable(layout.table).compile(dialect=DIALECTS[name]))


def test_contract_fields_are_typed_columns_under_their_reso_names() -> None:
    trestle = parse_metadata(trestle_metadata_xml())
    layout = plan_layout(trestle.resource("Property"))
    for name in ("ListingKey", "ListingId", "StandardStatus", "ListPrice", "City",
                 "PostalCode", "BedroomsTotal", "BathroomsTotalInteger",
                 "ModificationTimestamp", "PhotosChangeTimestamp"):
        assert layout.columns[name] == name
    assert next(iter(layout.columns)) == "ListingKey" == layout.key_column
    assert layout.table.name == "property"
    assert set(RESERVED_COLUMNS) <= set(layout.table.c.keys())
    media = plan_layout(trestle.resource("Media"))
    assert "ResourceRecordKey" in media.columns
    assert any(i.columns.keys() == ["ResourceRecordKey"] for i in media.table.indexes)


@pytest.mark.parametrize("dialect, fragments", [
    ("mariadb", ["`ListingKey` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
                 "`ListPrice` NUMERIC(14, 2)", "`ModificationTimestamp` DATETIME(6)",
                 "etl_record LONGTEXT CHARACTER SET utf8mb4", "etl_mod_ticks BIGINT",
                 "ROW_FORMAT=DYNAMIC"]),
    ("mysql", ["COLLATE utf8mb4_0900_bin"]),
    ("postgresql", ['"ListingKey" VARCHAR(64) COLLATE "C"', '"ListPrice" NUMERIC(14, 2)',
                    '"ModificationTimestamp" TIMESTAMP WITH TIME ZONE',
                    "etl_record VARCHAR NOT NULL"]),  # unbounded VARCHAR is TEXT there
    ("sqlite", ['"ListPrice" NUMERIC', "etl_record TEXT"]),
])
def test_column_types_per_dialect(dialect: str, fragments: list[str]) -> None:
    text = ddl(dialect)
    for fragment in fragments:
        assert fragment in text, text


def test_every_edm_type_has_a_sql_type() -> None:
    expected = {
        "ListingId": sa.String, "ListPrice": sa.types.TypeDecorator,
        "BedroomsTotal": sa.Integer, "BathroomsTotalInteger": sa.SmallInteger,
        "TaxAnnualAmount": sa.BigInteger, "Stories": sa.SmallInteger,
        "NewConstructionYN": sa.Boolean, "ListingContractDate": sa.Date,
        "LotSizeAcres": sa.Double, "StandardStatus": sa.String,
    }
    for name, kind in expected.items():
        assert isinstance(sql_type(PROPERTY.field(name)), kind), name  # type: ignore[arg-type]
    for name in ("Appliances", "InteriorFeatures", "Tags", "X_Location", "PublicRemarks"):
        column_type = sql_type(PROPERTY.field(name))  # type: ignore[arg-type]
        assert not isinstance(column_type, sa.String) or column_type.length is None


def test_promotions_beyond_the_byte_budget_stay_in_the_document() -> None:
    trestle = parse_metadata(trestle_metadata_xml())
    spec = trestle.resource("Property")
    every = [f.name for f in spec.fields]
    chosen = promoted_fields(spec, every)
    assert sum(inline_bytes(spec.field(n)) for n in chosen) <= TYPED_COLUMNS_BYTE_BUDGET + \
        inline_bytes(spec.key_field)
    assert len(chosen) < len(every)


def test_existing_column_names_are_kept() -> None:
    layout = plan_layout(PROPERTY, existing={"City": "City_renamed_earlier"})
    assert layout.columns["City"] == "City_renamed_earlier"
    media = plan_layout(SMALL.resource("Media"), existing={"Gone": "Gone"})
    assert media.retired == {"Gone": "Gone"} and "Gone" in media.table.c
