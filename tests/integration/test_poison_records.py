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
from trestle_tasks.store.jsontext import decode_json, encode_json
from trestle_tasks.store.loader import TRUNCATED_MARK, RecordLoader
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.store import Store
from trestle_tasks.sync.repair import repair
from trestle_tasks.sync.repair_plan import RepairPlan
from trestle_tasks.trestle.by_key import fetch_by_keys
from trestle_tasks.trestle.pager import KeysetRange, census_versions, walk_keyset
from trestle_tasks.trestle.query import ODataQuery

from .poison_server import QUICK_RETRY, PoisonServer, page_body, poison_server

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
                                   retry=QUICK_RETRY)
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


def test_an_unreadable_timestamp_in_a_census_is_one_unknown_version_not_a_failed_census(
        server: PoisonServer) -> None:
    """Before: `0000-00-00T00:00:00Z` (or an instant past year 9999 in UTC) in one census
    record raised UnexpectedResponseError / OverflowError: every reconcile and every
    window plan of the resource failed, for good. Now that record's version is unknown
    (so it is fetched by key, and rejected alone by the loader)."""
    server.serve_records([
        {"ListingKey": "a", "ModificationTimestamp": "2024-01-01T00:00:00.1234567Z"},
        {"ListingKey": "b", "ModificationTimestamp": "0000-00-00T00:00:00Z"},
        {"ListingKey": "c", "ModificationTimestamp": "9999-12-31T23:59:59.9999999-01:00"},
        {"ListingKey": "d", "ModificationTimestamp": "2024-01-02T00:00:00+01:00"},
    ])
    pages = list(census_versions(server.client(), "Property", "ListingKey"))
    assert pages == [[("a", 17040672001234567), ("b", None), ("c", None),
                      ("d", 17041500000000000)]]


def test_a_key_too_long_for_any_url_is_left_out_and_the_other_keys_are_still_fetched(
        server: PoisonServer) -> None:
    """Before: KeyTooLongError from the by-key query ended the whole repair."""
    records = {k: {"ListingKey": k} for k in ("k1", "k2", "k3")}
    server.answer = lambda path: page_body(
        [r for k, r in records.items() if f"'{k}'" in path])
    skipped: list[str] = []
    long_key = "x" * 5000
    pages = list(fetch_by_keys(server.client(), "Property", "ListingKey",
                               ["k1", long_key, "k2", "k3"], on_too_long=skipped.append))
    assert sorted(r["ListingKey"] for p in pages for r in p.records) == ["k1", "k2", "k3"]
    assert skipped == [long_key]
    assert not any(long_key in path for path in server.paths)


def test_a_repair_with_a_key_too_long_for_any_url_repairs_the_others_and_counts_it(
        server: PoisonServer, tmp_path: Any) -> None:
    """Before: the reconcile's repair raised KeyTooLongError at the long key: the records
    after it were never repaired and the reconcile failed."""
    target = _target("sqlite", tmp_path)
    try:
        good = good_records(unique_prefix(), 3)
        by_key = {r["ListingKey"]: r for r in good}
        server.answer = lambda path: page_body(
            [r for k, r in by_key.items() if f"'{k}'" in path])
        long_key = "y" * 5000
        plan = RepairPlan(by_key=[good[0]["ListingKey"], long_key,
                                  good[1]["ListingKey"], good[2]["ListingKey"]])
        store = Store(target.engine, schema=target.schema)
        outcome = repair("Property", plan, key_field="ListingKey", store=store,
                         client=server.client(), run_id="poison-run")
        assert (outcome.upserted, outcome.rejected) == (3, 1)
        assert outcome.unfetchable_keys == [long_key]
        assert stored_keys(target) == set(by_key)
    finally:
        close_target(target)


def deep_array(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb", "postgresql"])
def test_records_nested_thousands_deep_are_rejected_alone_and_the_page_is_stored(
        server: PoisonServer, tmp_path: Any, dialect: str) -> None:
    """Before: the page's decoding raised RecursionError (msgspec and the standard parser
    both recurse): the whole page, and the window, failed on every retry."""
    target = _target(dialect, tmp_path)
    try:
        prefix = unique_prefix()
        good = good_records(prefix, 4)
        parts = [encode_json(good[0]),
                 # a declared GeographyPoint, an undeclared field, deep enough for the checks
                 f'{{"ListingKey": "{prefix}-geo", "X_Location": {{"type": "Point", '
                 f'"coordinates": {deep_array(5000)}}}}}',
                 encode_json(good[1]),
                 f'{{"ListingKey": "{prefix}-extra", "X_Deep": {deep_array(50_000)}}}',
                 encode_json(good[2]),
                 f'{{"ListingKey": "{prefix}-900", "X_Deep": {deep_array(900)}}}',
                 encode_json(good[3])]
        server.body = ('{"value": [' + ", ".join(parts) + "]}").encode()
        page = server.client().get_page(ODataQuery("Property"))
        assert len(page.records) == 7
        loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                                   retry=QUICK_RETRY)
        result = loader.load(page.records)
        assert (result.upserted, result.rejected) == (4, 3)
        assert stored_keys(target) == {r["ListingKey"] for r in good}
        assert sorted((key, reason) for key, reason, _raw in rejects(target)) == [
            (f"{prefix}-{name}", "too_deep") for name in ("900", "extra", "geo")]
    finally:
        close_target(target)


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb", "postgresql"])
def test_a_timestamp_past_year_9999_ending_a_page_is_rejected_and_the_walk_goes_on(
        server: PoisonServer, tmp_path: Any, dialect: str) -> None:
    """Before: `9999-12-31T23:59:59.9999999-01:00` (year 10000 in UTC) on the last record
    of a page raised OverflowError when it became the keyset cursor: the window failed,
    its records were never stored and the watermark never passed it."""
    target = _target(dialect, tmp_path)
    try:
        prefix = unique_prefix()
        good = good_records(prefix, 2)
        poison = {"ListingKey": f"{prefix}-late",
                  "ModificationTimestamp": "9999-12-31T23:59:59.9999999-01:00"}

        def answer(path: str) -> bytes:
            if "$filter" not in path:  # the first page, full: a nextLink follows
                return encode_json({"value": [good[0], good[1], poison],
                                    "@odata.nextLink": f"{server.url}?$skip=3"}).encode()
            # After a cursor past year 9999 nothing legitimate is left: an empty page.
            return page_body([])

        server.answer = answer
        records = [r for page in walk_keyset(server.client(),
                                             KeysetRange("Property", "ListingKey"))
                   for r in page.records]
        assert [r["ListingKey"] for r in records] == [
            good[0]["ListingKey"], good[1]["ListingKey"], poison["ListingKey"]]
        assert "9999-12-31T23:59:59.9999999Z" in server.paths[-1]
        loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                                   retry=QUICK_RETRY)
        result = loader.load(records)
        assert (result.upserted, result.rejected) == (2, 1)
        assert stored_keys(target) == {r["ListingKey"] for r in good}
        assert [(k, reason) for k, reason, _raw in rejects(target)] == [
            (poison["ListingKey"], "out_of_range")]
    finally:
        close_target(target)
