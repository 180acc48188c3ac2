"""The Store facade: what the sync layer and the CLI call, end to end."""

from __future__ import annotations

import io
from pathlib import Path

from tests.store_data import SMALL_EDMX
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.store.jsontext import decode_json
from trestle_tasks.store.store import Store


def test_the_facade_covers_a_sync_and_a_reconcile(store_target: StoreTarget  # noqa: F811
                                                  ) -> None:
    store = Store(store_target.engine, schema=store_target.schema, batch_size=2)
    report = store.migrate(SMALL_EDMX, ["Property", "Media"])
    assert sorted(report.created_tables) == ["media", "property"]
    assert store.resources() == ["Media", "Property"]
    store.sync_log.open_run("r", "Property")
    store.sync_log.start_window("r", "Property", "w1")
    records = [{"ListingKey": f"K{i}", "ModificationTimestamp": "2024-01-01T00:00:00Z",
                "PublicRemarks": f"remarks {i}"} for i in range(5)]
    result = store.upsert("Property", [*records, {"ListingKey": 7}], run_id="r",
                          window_id="w1")
    assert (result.upserted, result.rejected, result.batches) == (5, 1, 3)
    store.sync_log.finish_window("r", "Property", "w1", status="succeeded", api_requests=1)
    run = store.sync_log.close_run("r", "Property", status="succeeded")
    assert run is not None and (run.records_fetched, run.records_upserted,
                                run.records_rejected, run.windows_ok) == (6, 5, 1, 1)
    assert store.mark_deleted("Property", ["K0", "K1"]) == 2
    assert store.count("Property") == 3 and list(store.stored_keys("Property")) == [
        "K2", "K3", "K4"]
    out = io.StringIO()
    assert store.export("Property", out, include_deleted=True) == 5
    assert [decode_json(line) for line in out.getvalue().splitlines()] == records
    # A typed column added by a later migrate is used by the next batch at once.
    store.promote = {"Property": ["PublicRemarks"]}
    assert store.migrate(SMALL_EDMX, ["Property"]).added_columns == {
        "property": ["PublicRemarks"]}
    assert "PublicRemarks" in store.loader("Property").layout.columns


def test_from_url_builds_its_own_engine(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'store.db'}", batch_size=10)
    try:
        store.migrate(SMALL_EDMX.encode())
        assert store.resources() == ["EventLog", "Media", "Property"]
        assert store.upsert("EventLog", [{"EventSequence": 1}]).upserted == 1
    finally:
        store.dispose()


def test_export_can_write_comma_separated_multi_selects_as_lists(
    store_target: StoreTarget,  # noqa: F811
) -> None:
    store = Store(store_target.engine, schema=store_target.schema)
    store.migrate(SMALL_EDMX, ["Property"])
    record = {"ListingKey": "K", "Appliances": "Dryer,Oven", "InteriorFeatures": ["Bar"]}
    store.upsert("Property", [record, {"ListingKey": "L", "Appliances": ["Oven"]}])
    exact, lists = io.StringIO(), io.StringIO()
    store.export("Property", exact)
    store.export("Property", lists, flags_as_lists=True)
    assert decode_json(exact.getvalue().splitlines()[0]) == record
    assert [decode_json(line) for line in lists.getvalue().splitlines()] == [
        {**record, "Appliances": ["Dryer", "Oven"]}, {"ListingKey": "L", "Appliances": ["Oven"]}]
