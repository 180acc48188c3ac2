"""The staging-table path (MariaDB): LOAD DATA LOCAL INFILE, then a guarded
INSERT … SELECT; the same guarantees as the multi-row path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.wide_records import wide_records
from tests.store_data import PROPERTY, migrate_small
from tests.store_fixtures import StoreTarget, close_target, count_rows, open_target
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import STAGING, RecordLoader

pytestmark = pytest.mark.integration


@pytest.fixture
def mariadb(tmp_path: Path) -> Any:
    target = open_target("mariadb", tmp_path)
    migrate_small(target)
    yield target
    close_target(target)


def loader(target: StoreTarget, **options: Any) -> RecordLoader:
    return RecordLoader.open(target.engine, "Property", schema=target.schema,
                             method=STAGING, **options)


def test_wide_awkward_records_round_trip(mariadb: StoreTarget) -> None:
    records = list(wide_records(PROPERTY, 30))
    records[3]["PublicRemarks"] = "tab\there, newline\nthere, \\N, \\, NUL-free \r done"
    records[4]["City"] = None
    result = loader(mariadb, batch_size=7).load(records)
    assert (result.loaded, result.rejected) == (30, 0)
    assert list(export_records(mariadb.engine, "Property", schema=mariadb.schema)) == records


def test_older_versions_never_overwrite_and_rejects_are_kept(mariadb: StoreTarget) -> None:
    def version(stamp: str, city: str) -> dict[str, Any]:
        return {"ListingKey": "K", "ModificationTimestamp": stamp, "City": city}

    load = loader(mariadb, batch_size=2)
    load.load([version("2024-01-01T00:00:00.0000002Z", "new")])
    result = load.load([version("2024-01-01T00:00:00.0000001Z", "old"), {"ListingKey": ""}])
    assert result.rejected == 1 and count_rows(mariadb, "etl_rejects") == 1
    assert next(export_records(mariadb.engine, "Property",
                               schema=mariadb.schema))["City"] == "new"
    load.load([version("2024-01-01T00:00:00.0000002Z", "same time, later delivery")])
    assert next(export_records(mariadb.engine, "Property",
                               schema=mariadb.schema))["City"] == "same time, later delivery"


def test_the_staging_path_is_for_mysql_only(tmp_path: Path) -> None:
    target = open_target("sqlite", tmp_path)
    try:
        migrate_small(target)
        with pytest.raises(ValueError, match="MySQL"):
            loader(target)
    finally:
        close_target(target)
