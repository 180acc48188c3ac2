"""Issue 22, items 6 and 7: one poison record in a page served over HTTP is rejected
alone, counted, and never costs its neighbours (real MariaDB, PostgreSQL, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.store_data import migrate_small, unique_prefix
from tests.store_fixtures import StoreTarget, close_target, open_target
from trestle_tasks.store.jsontext import decode_json
from trestle_tasks.store.loader import TRUNCATED_MARK, RecordLoader
from trestle_tasks.store.schema import bookkeeping

from .poison_server import PoisonServer, poison_server

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[PoisonServer]:
    with poison_server() as running:
        yield running


def _target(dialect: str, tmp_path: Any) -> StoreTarget:
    target = open_target(dialect, tmp_path)
    migrate_small(target, ("Property",))
    return target


def good_records(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"ListingKey": f"{prefix}-{i}", "City": "Ville", "BedroomsTotal": i,
             "ModificationTimestamp": f"2024-01-0{i + 1}T10:00:00.1234567Z"}
            for i in range(count)]


def fetch(server: PoisonServer) -> list[Any]:
    response = requests.get(server.url, timeout=60)
    response.raise_for_status()
    return list(decode_json(response.content)["value"])


def stored_keys(target: StoreTarget) -> set[str]:
    layout = RecordLoader.open(target.engine, "Property", schema=target.schema).layout
    with target.engine.connect() as conn:
        return set(conn.execute(sa.select(layout.table.c[layout.key_column])).scalars())


def rejects(target: StoreTarget) -> list[Any]:
    table = bookkeeping(target.schema)["etl_rejects"]
    with target.engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.record_key, table.c.reason,
                                           table.c.raw_record)).all())


def test_an_oversized_record_is_rejected_alone_and_its_reject_row_fits_mariadb(
        server: PoisonServer, tmp_path: Any) -> None:
    """Before: the reject row held the record with ensure_ascii (6 bytes per é, ~19 MB
    here), over MariaDB's 16 MB max_allowed_packet: the connection died, the batch was
    retried until the budget ended and the 4 good records were never stored."""
    target = _target("mariadb", tmp_path)
    try:
        with target.engine.connect() as conn:
            packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        prefix = unique_prefix()
        good = good_records(prefix, 4)
        # Over the loader's one-row limit (3/8 of the packet, as UTF-8), and its ASCII-escaped
        # form over the whole packet.
        huge = {"ListingKey": f"{prefix}-huge", "X_Essay": "é" * (packet * 3 // 8 + 1000),
                "ModificationTimestamp": "2024-02-01T00:00:00Z"}
        server.serve_records([good[0], good[1], huge, good[2], good[3]])
        loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                                   retry=_quick_retry())
        result = loader.load(fetch(server))
        assert (result.upserted, result.rejected) == (4, 1)
        assert stored_keys(target) == {r["ListingKey"] for r in good}
        [(key, reason, raw)] = rejects(target)
        assert (key, reason) == (huge["ListingKey"], "too_long")
        kept = decode_json(raw)
        assert len(raw) <= 64 * 1024
        assert kept["ListingKey"] == huge["ListingKey"]
        assert kept["ModificationTimestamp"] == huge["ModificationTimestamp"]
        assert len(kept[TRUNCATED_MARK]["sha256"]) == 64
        assert kept[TRUNCATED_MARK]["prefix"].startswith('{"ListingKey":')
    finally:
        close_target(target)


def _quick_retry() -> Any:
    from trestle_tasks.retry import RetryPolicy
    return RetryPolicy(budget_s=5, base_delay_s=0.01, max_delay_s=0.1)
