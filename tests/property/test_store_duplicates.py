"""Duplicate detection: duplicates of one key inside a batch collapse to the
newest by ModificationTimestamp (the later one on a tie; a record without one is the
oldest), whatever their order, and the load reports how many were collapsed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.store_data import migrate_small, timestamps, unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target  # noqa: F401
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import RecordLoader


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target)
    return module_store_target


def ticks(record: dict[str, Any]) -> int | None:
    stamp = record.get("ModificationTimestamp")
    return None if stamp is None else ODataTimestamp.parse(stamp).ticks


def newest_per_key(batch: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What must be stored: per key, the last record among those with the largest ticks."""
    winner: dict[str, dict[str, Any]] = {}
    for record in batch:
        key = record["ListingKey"]
        seen = winner.get(key)
        if seen is None or ticks(seen) is None or (
                ticks(record) is not None and ticks(record) >= ticks(seen)):
            winner[key] = record
    return winner


# Few distinct instants, so ties are common; sometimes no timestamp at all.
STAMPS = st.one_of(st.none(), st.sampled_from([
    "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.0000001Z", "2023-12-31T19:00:00-05:00",
    "2024-06-30T12:00:00.5Z",
]), timestamps())


@st.composite
def batches_with_duplicates(draw: st.DrawFn) -> list[dict[str, Any]]:
    prefix = unique_prefix()
    keys = [f"{prefix}-{i}" for i in range(draw(st.integers(1, 4)))]
    batch = []
    for serial in range(draw(st.integers(1, 16))):
        record: dict[str, Any] = {"ListingKey": draw(st.sampled_from(keys)),
                                  "PhotosCount": serial}
        stamp = draw(STAMPS)
        if stamp is not None:
            record["ModificationTimestamp"] = stamp
        batch.append(record)
    return batch


@given(batch=batches_with_duplicates())
def test_duplicates_in_a_batch_collapse_to_the_newest(target: StoreTarget,
                                                      batch: list[dict[str, Any]]) -> None:
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=len(batch))
    result = loader.load(batch)
    expected = newest_per_key(batch)
    assert result.duplicates == len(batch) - len(expected)
    assert result.upserted == len(expected)
    stored = {r["ListingKey"]: r for r in export_records(target.engine, "Property",
                                                         schema=target.schema)
              if r["ListingKey"] in expected}
    assert stored == expected
