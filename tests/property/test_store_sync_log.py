"""Metadata tracking accuracy: after any run — windows loaded, some of them
redelivered and loaded again, some failed — the sync log says exactly how many records
were fetched, upserted and rejected, how many windows succeeded and failed, and when the
run started and finished; etl_rejects holds exactly the rejects counted; and fields seen
before the metadata declares them are tracked once each in etl_field_map."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.store_data import migrate_small, records, unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target  # noqa: F401
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import FAILED, PARTIAL, SUCCEEDED, SyncLog


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target)
    return module_store_target


@st.composite
def window_plans(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Windows: their records (some invalid), whether they were delivered twice (the first
    time cut short), whether they failed, and the API requests they made."""
    prefix = unique_prefix()
    plans = []
    for w in range(draw(st.integers(1, 4))):
        batch = []
        for i in range(draw(st.integers(0, 6))):
            record = draw(records(key=f"{prefix}-{w}-{i}"))
            if draw(st.integers(0, 3)) == 0:
                record["BedroomsTotal"] = "many"
            if draw(st.integers(0, 5)) == 0:
                record[f"X_New{draw(st.integers(0, 2))}_{prefix}"] = "seen before declared"
            batch.append(record)
        plans.append({"id": f"w{w}", "records": batch, "redelivered": draw(st.booleans()),
                      "failed": draw(st.integers(0, 4)) == 0,
                      "requests": draw(st.integers(0, 9))})
    return plans


@given(plans=window_plans(), batch_size=st.integers(1, 4))
def test_the_sync_log_counts_what_happened(target: StoreTarget, plans: list[dict[str, Any]],
                                           batch_size: int) -> None:
    run_id = unique_prefix()
    sync_log = SyncLog(target.engine, schema=target.schema)
    assert sync_log.open_run(run_id, "Property", windows_total=len(plans))
    assert not sync_log.open_run(run_id, "Property")  # opening twice is harmless
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=batch_size)
    for plan in plans:
        if plan["redelivered"]:
            # A first delivery that died part-way: its counts and rejects must not stay.
            sync_log.start_window(run_id, "Property", plan["id"])
            loader.load(plan["records"][: len(plan["records"]) // 2 + 1], run_id=run_id,
                        window_id=plan["id"])
        sync_log.start_window(run_id, "Property", plan["id"])
        loader.load(plan["records"], run_id=run_id, window_id=plan["id"])
        sync_log.finish_window(run_id, "Property", plan["id"],
                              status=FAILED if plan["failed"] else SUCCEEDED,
                              api_requests=plan["requests"])
    any_failed = any(p["failed"] for p in plans)
    closed = sync_log.close_run(run_id, "Property", status=PARTIAL if any_failed else SUCCEEDED,
                               error="2 windows failed" if any_failed else None)
    again = sync_log.close_run(run_id, "Property", status=FAILED)  # closing twice changes nothing
    assert closed == again
    assert closed is not None

    everything = [r for p in plans for r in p["records"]]
    rejected = [r for r in everything if r.get("BedroomsTotal") == "many"]
    assert closed.records_fetched == len(everything)
    assert closed.records_rejected == len(rejected)
    assert closed.records_upserted == len(everything) - len(rejected)
    assert closed.api_requests == sum(p["requests"] for p in plans)
    assert closed.windows_total == len(plans)
    assert closed.windows_failed == sum(p["failed"] for p in plans)
    assert closed.windows_ok == len(plans) - closed.windows_failed
    assert closed.status == (PARTIAL if any_failed else SUCCEEDED)
    assert closed.finished_at is not None and closed.started_at <= closed.finished_at

    tables = bookkeeping(target.schema)
    rejects, field_map = tables["etl_rejects"], tables["etl_field_map"]
    with target.engine.connect() as conn:
        reject_count = conn.execute(sa.select(sa.func.count()).select_from(rejects).where(
            rejects.c.run_id == run_id)).scalar_one()
        assert reject_count == len(rejected)
        loaded = [r for r in everything if r.get("BedroomsTotal") != "many"]
        seen = {k for r in loaded for k in r if k.startswith("X_New")}
        tracked = conn.execute(sa.select(field_map.c.field_name, field_map.c.declared).where(
            field_map.c.resource == "Property", field_map.c.field_name.like("X_New%"))).all()
    tracked_here = {name for name, _declared in tracked if name.endswith(run_prefix(plans))}
    assert tracked_here == seen
    assert not any(declared for _n, declared in tracked)


def run_prefix(plans: list[dict[str, Any]]) -> str:
    for plan in plans:
        for record in plan["records"]:
            return record["ListingKey"].split("-")[0]
    return "\x00"
