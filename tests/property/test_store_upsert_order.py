"""Upsert correctness: any interleaving of the versions of a record — split
over any number of loads and batches, and also from concurrent loaders — ends with the
newest stored, because the comparison happens inside the upsert statement."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.store_data import migrate_small, unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target  # noqa: F401
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.export import export_records
from trestle_tasks.store.loader import RecordLoader

BASE = ODataTimestamp.parse("2024-03-01T00:00:00Z").ticks


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target)
    return module_store_target


def version(key: str, offset: int, serial: int) -> dict[str, Any]:
    # offset in ticks: versions 100 ns apart differ only in the seventh digit, which a
    # DATETIME(6) comparison could not tell apart.
    return {"ListingKey": key, "ModificationTimestamp": ODataTimestamp(BASE + offset).to_odata(),
            "PhotosCount": serial, "City": f"v{serial}"}


def stored(target: StoreTarget, keys: set[str]) -> dict[str, dict[str, Any]]:
    return {r["ListingKey"]: r for r in export_records(target.engine, "Property",
                                                       schema=target.schema)
            if r["ListingKey"] in keys}


@given(offsets=st.lists(st.integers(0, 30), min_size=1, max_size=10),
       order=st.randoms(use_true_random=False), cuts=st.lists(st.integers(1, 4), max_size=6),
       batch_size=st.integers(1, 4))
def test_any_interleaving_ends_with_the_newest(target: StoreTarget, offsets: list[int],
                                               order: random.Random, cuts: list[int],
                                               batch_size: int) -> None:
    key = unique_prefix()
    versions = [version(key, offset, serial) for serial, offset in enumerate(offsets)]
    order.shuffle(versions)
    # Expected: the last delivered among the versions with the largest timestamp.
    newest = max(offsets)
    expected = [v for v in versions
                if ODataTimestamp.parse(v["ModificationTimestamp"]).ticks == BASE + newest][-1]
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=batch_size)
    position = 0
    for cut in [*cuts, len(versions)]:
        loader.load(versions[position:position + cut])
        position += cut
        if position >= len(versions):
            break
    assert stored(target, {key})[key] == expected


def test_concurrent_loaders_end_with_the_newest(target: StoreTarget) -> None:
    prefix = unique_prefix()
    keys = [f"{prefix}-{i}" for i in range(20)]
    rng = random.Random(7)
    # Four loaders, each delivering every key's versions in its own shuffled order.
    plans = []
    for worker in range(4):
        deliveries = [version(k, rng.randrange(1, 10_000) * 4 + worker, worker * 100 + n)
                      for n, k in enumerate(keys * 3)]
        rng.shuffle(deliveries)
        plans.append(deliveries)
    newest: dict[str, dict[str, Any]] = {}
    for plan in plans:
        for v in plan:
            seen = newest.get(v["ListingKey"])
            if seen is None or v["ModificationTimestamp"] > seen["ModificationTimestamp"]:
                newest[v["ListingKey"]] = v
    start = threading.Barrier(len(plans))
    errors: list[BaseException] = []

    def run(plan: list[dict[str, Any]]) -> None:
        try:
            loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                                       batch_size=7)
            start.wait()
            for i in range(0, len(plan), 7):
                loader.load(plan[i:i + 7])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert stored(target, set(keys)) == newest
