"""Acceptance (issue 3): migrate from the `$metadata` a simulator serves (the wide
Trestle-like document of tests/wide_metadata.py, 588 Property fields),
load its Property records — every field at maximum length — into MariaDB through the
pipeline's client, and export them back equal to what was received.

STORE_SIM_RECORDS sets the count (the acceptance run uses 10,000; the default keeps the
suite fast). The other resources' tables are created by the same migrate.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import build_client, start_simulator
from tests.store_fixtures import StoreTarget, close_target, open_target
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.store import Store
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset

pytestmark = pytest.mark.integration

RECORDS = int(os.environ.get("STORE_SIM_RECORDS", "150"))
RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[StoreTarget]:
    target = open_target("mariadb", tmp_path)
    yield target
    close_target(target)


def test_migrate_from_the_simulator_then_load_and_export_max_length_records(
    mariadb: StoreTarget, trestle_metadata_path: Path,
) -> None:
    with start_simulator(records=RECORDS, metadata_path=trestle_metadata_path,
                         fill="max") as sim:
        client = build_client(sim)
        store = Store(mariadb.engine, schema=mariadb.schema)
        report = store.migrate(client.get_metadata(), RESOURCES)
        assert sorted(report.created_tables) == sorted(
            ["property", "member", "office", "open_house", "media"])
        assert not store.migrate(client.get_metadata(), RESOURCES).changed

        # Digests, not records: the acceptance run holds 10,000 records of ~200 KB.
        received: dict[str, str] = {}
        run = "acceptance"
        store.sync_log.open_run(run, "Property")
        for page in walk_keyset(client, KeysetRange("Property", "ListingKey")):
            result = store.upsert("Property", page.records, run_id=run)
            assert result.rejected == 0, [(r.field, r.reason, r.detail)
                                          for r in result.rejections[:3]]
            for record in page.records:
                received[record["ListingKey"]] = digest(record)
        closed = store.sync_log.close_run(run, "Property", status="succeeded")

    assert len(received) == RECORDS
    assert closed is not None
    assert (closed.records_fetched, closed.records_upserted, closed.records_rejected) == (
        RECORDS, RECORDS, 0)
    exported = [(r["ListingKey"], digest(r)) for r in store.records("Property")]
    assert exported == sorted(received.items())
    first = next(store.records("Property"))
    longest = max(len(v) for v in first.values() if isinstance(v, str))
    assert longest >= 8000  # the widest declared strings really were at their maximum
    out = io.StringIO()
    assert store.export("Property", out) == RECORDS  # the NDJSON writer, as the CLI uses
    assert decode_json(out.getvalue().splitlines()[0]) == first


def digest(record: dict[str, Any]) -> str:
    """Exact: decimals keep their digits in encode_json, so equal digests are equal records."""
    return hashlib.sha256(encode_json(record).encode("utf-8", "surrogatepass")).hexdigest()
