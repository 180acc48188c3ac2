"""Validation and processing continuation: any mix of valid and invalid records
loads every valid one, rejects every invalid one (never as garbage) with its key, field,
reason and raw record in etl_rejects, and the run's sync-log counts say so."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.store_data import migrate_small, records, unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target  # noqa: F401
from trestle_tasks.store import transform as t
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import RecordLoader, raw_record_text
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import SyncLog


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target)
    return module_store_target


# (what to do to a valid record, the field blamed, the reason)
BREAKAGES: list[tuple[str, Any, str | None, str]] = [
    ("drop key", None, "ListingKey", t.MISSING_KEY),
    ("empty key", "", "ListingKey", t.MISSING_KEY),
    ("blank key", "  \t", "ListingKey", t.MISSING_KEY),
    ("numeric key", 42, "ListingKey", t.WRONG_TYPE),
    ("BedroomsTotal", "three", "BedroomsTotal", t.WRONG_TYPE),
    ("BedroomsTotal", 2.5, "BedroomsTotal", t.WRONG_TYPE),
    ("NewConstructionYN", "yes", "NewConstructionYN", t.WRONG_TYPE),
    ("City", 5, "City", t.WRONG_TYPE),
    ("ListPrice", "100000", "ListPrice", t.WRONG_TYPE),
    ("ListPrice", Decimal("1.234"), "ListPrice", t.OUT_OF_RANGE),
    ("ListPrice", Decimal("1E+13"), "ListPrice", t.OUT_OF_RANGE),
    ("Stories", 256, "Stories", t.OUT_OF_RANGE),
    ("BathroomsTotalInteger", 40000, "BathroomsTotalInteger", t.OUT_OF_RANGE),
    ("ModificationTimestamp", "yesterday", "ModificationTimestamp", t.INVALID_TIMESTAMP),
    ("ModificationTimestamp", "2024-01-01T00:00:00", "ModificationTimestamp",
     t.INVALID_TIMESTAMP),  # no offset: which instant is it?
    ("ModificationTimestamp", "2024-02-30T00:00:00Z", "ModificationTimestamp",
     t.INVALID_TIMESTAMP),
    ("PhotosChangeTimestamp", "2024-01-01T00:00:00.12345678Z", "PhotosChangeTimestamp",
     t.INVALID_TIMESTAMP),  # eight fractional digits
    ("ListingContractDate", "2023-02-29", "ListingContractDate", t.INVALID_DATE),
    ("ListingContractDate", "02/01/2024", "ListingContractDate", t.INVALID_DATE),
    ("City", "x" * 51, "City", t.TOO_LONG),
    ("PostalCode", "é" * 11, "PostalCode", t.TOO_LONG),
    ("PublicRemarks", "nul\x00byte", "PublicRemarks", t.INVALID_CHARACTER),
    ("Tags", ["ok", "lone \ud800 surrogate"], "Tags", t.INVALID_CHARACTER),
    ("Tags", "not a list", "Tags", t.WRONG_TYPE),
    ("Appliances", 7, "Appliances", t.WRONG_TYPE),
    ("X_Location", [1, 2], "X_Location", t.WRONG_TYPE),
    ("LotSizeAcres", float("nan"), "LotSizeAcres", t.OUT_OF_RANGE),
]


@st.composite
def mixed_batches(draw: st.DrawFn) -> tuple[list[Any], list[tuple[int, str | None, str]]]:
    """Records, and for each invalid one: its position, blamed field and reason."""
    prefix = unique_prefix()
    count = draw(st.integers(1, 14))
    batch: list[Any] = []
    broken: list[tuple[int, str | None, str]] = []
    for index in range(count):
        record = draw(records(key=f"{prefix}-{index}"))
        if draw(st.integers(0, 2)) == 0:
            what, value, field, reason = draw(st.sampled_from(BREAKAGES))
            if what == "drop key":
                del record["ListingKey"]
            elif what.endswith("key"):
                record["ListingKey"] = value
            else:
                record[what] = value
            broken.append((index, field, reason))
        elif draw(st.integers(0, 20)) == 0:
            batch.append(["not", "an", "object"])
            broken.append((index, None, t.NOT_AN_OBJECT))
            continue
        batch.append(record)
    return batch, broken


@given(case=mixed_batches(), batch_size=st.integers(1, 6))
def test_bad_records_are_rejected_and_the_rest_loads(
    target: StoreTarget, case: tuple[list[Any], list[tuple[int, str | None, str]]],
    batch_size: int,
) -> None:
    batch, broken = case
    run_id = unique_prefix()
    sync_log = SyncLog(target.engine, schema=target.schema)
    sync_log.open_run(run_id, "Property")
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=batch_size)
    result = loader.load(batch, run_id=run_id)

    bad_positions = {index for index, _f, _r in broken}
    good = [r for i, r in enumerate(batch) if i not in bad_positions]
    assert result.rejected == len(broken)
    assert result.upserted == len(good)
    assert result.received == len(batch)

    rejects = bookkeeping(target.schema)["etl_rejects"]
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(rejects).where(rejects.c.run_id == run_id)
                            .order_by(rejects.c.id)).mappings().all()
    # Each reject names the record as it was received, its key, the field and the reason.
    got = sorted((r["raw_record"], r["record_key"], r["field"], r["reason"]) for r in rows)
    expected = []
    for index, field, reason in broken:
        record = batch[index]
        key = record.get("ListingKey") if isinstance(record, dict) else None
        expected.append((raw_record_text(record), None if key is None else str(key),
                         field, reason))
    assert got == sorted(expected)
    assert all(r["resource"] == "Property" and r["detail"] for r in rows)

    stored = {r["ListingKey"]: r for r in export_records(target.engine, "Property",
                                                         schema=target.schema)}
    for record in good:
        assert stored[record["ListingKey"]] == record
    for index in bad_positions:
        record = batch[index]
        if isinstance(record, dict) and isinstance(record.get("ListingKey"), str):
            assert record["ListingKey"] not in stored  # never loaded as garbage

    run = sync_log.get_run(run_id, "Property")
    assert run is not None
    assert (run.records_fetched, run.records_upserted, run.records_rejected) == (
        len(batch), len(good), len(broken))
