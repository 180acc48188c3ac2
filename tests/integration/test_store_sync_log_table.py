"""Watermarks, run bookkeeping and soft deletes on the three databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.store_data import migrate_small
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.records import count_records, mark_deleted, stored_keys
from trestle_tasks.store.sync_log import FAILED, SUCCEEDED, SyncLog, Watermark

pytestmark = pytest.mark.integration


@pytest.fixture
def target(store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(store_target)
    return store_target


def test_watermarks_keep_seven_digits_and_only_move_forward(target: StoreTarget) -> None:
    sync_log = SyncLog(target.engine, schema=target.schema)
    assert sync_log.read_watermark("Property") is None
    first = Watermark.parse("2024-03-01T10:00:00.1234567-05:00", "K9")
    assert sync_log.advance_watermark("Property", first, run_id="r1")
    stored = sync_log.read_watermark("Property")
    assert stored == first and stored.text == "2024-03-01T15:00:00.1234567Z"
    # One tick earlier, or the same place: no move. A later key at the same tick: a move.
    assert not sync_log.advance_watermark("Property", Watermark(first.ticks - 1, "Z"))
    assert not sync_log.advance_watermark("Property", first)
    tie = Watermark(first.ticks, "L0")
    assert sync_log.advance_watermark("Property", tie)
    assert sync_log.read_watermark("Property") == tie
    assert sync_log.advance_watermark("Property", Watermark(first.ticks + 1))
    assert sync_log.watermarks() == {"Property": Watermark(first.ticks + 1)}
    sync_log.reset_watermark("Property")
    assert sync_log.read_watermark("Property") is None


def test_a_fenced_out_run_cannot_advance_the_watermark(target: StoreTarget) -> None:
    sync_log = SyncLog(target.engine, schema=target.schema)
    start = Watermark.parse("2024-01-01T00:00:00Z")
    assert sync_log.advance_watermark("Member", start, fence=7)
    # The lock moved on to token 8; the old holder (7) finishes late and is refused.
    assert sync_log.advance_watermark("Member", Watermark(start.ticks + 10), fence=8)
    assert not sync_log.advance_watermark("Member", Watermark(start.ticks + 20), fence=7)
    assert sync_log.read_watermark("Member") == Watermark(start.ticks + 10)


def test_runs_are_listed_and_secrets_never_stored(target: StoreTarget) -> None:
    sync_log = SyncLog(target.engine, schema=target.schema)
    sync_log.open_run("old", "Property", details={"windows": 3})
    sync_log.open_run("new", "Media", windows_total=2, watermark_from="2024-01-01T00:00:00Z")
    sync_log.add_counts("new", "Media", fetched=5, upserted=4, rejected=1, api_requests=2)
    assert sync_log.get_run("new", "Media").records_fetched == 5
    assert {r.run_id for r in sync_log.stale_runs(timedelta(0))} == {"old", "new"}
    closed = sync_log.close_run(
        "old", "Property", status=FAILED,
        error="connect to mysql://etl:hunter2@db/trestle failed; Bearer abc.def.ghi; "
              "client_secret=s3cr3t")
    assert closed is not None and closed.status == FAILED
    assert "hunter2" not in closed.error and "abc.def" not in closed.error
    assert "s3cr3t" not in closed.error
    assert closed.details == {"windows": 3}
    assert [r.run_id for r in sync_log.recent_runs(resource="Property")] == ["old"]
    assert {r.run_id for r in sync_log.stale_runs(timedelta(0))} == {"new"}
    sync_log.close_run("new", "Media", status=SUCCEEDED)
    assert sync_log.get_run("new", "Media").records_upserted == 4
    with pytest.raises(ValueError):
        sync_log.close_run("new", "Media", status="running")


def test_soft_deletes_hide_records_until_they_come_back(target: StoreTarget) -> None:
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema)
    records = [{"ListingKey": f"K{i}", "ModificationTimestamp": "2024-01-01T00:00:00Z"}
               for i in range(5)]
    loader.load(records)
    sync_log = SyncLog(target.engine, schema=target.schema)
    sync_log.open_run("reconcile", "Property")
    assert mark_deleted(target.engine, "Property", ["K1", "K3", "nope"],
                        schema=target.schema, run_id="reconcile") == 2
    assert mark_deleted(target.engine, "Property", ["K1"], schema=target.schema) == 0
    assert sync_log.get_run("reconcile", "Property").records_deleted == 2
    assert list(stored_keys(target.engine, "Property", schema=target.schema)) == [
        "K0", "K2", "K4"]
    assert len(list(stored_keys(target.engine, "Property", schema=target.schema,
                                include_deleted=True))) == 5
    assert [r["ListingKey"] for r in export_records(
        target.engine, "Property", schema=target.schema)] == ["K0", "K2", "K4"]
    assert count_records(target.engine, "Property", schema=target.schema,
                         include_deleted=True) == 5
    # The record reappears in the feed: the upsert clears the mark.
    loader.load([{"ListingKey": "K3", "ModificationTimestamp": "2024-02-01T00:00:00Z"}])
    assert count_records(target.engine, "Property", schema=target.schema) == 4
