"""The run lock kept in the target database, on SQLite, MariaDB and PostgreSQL: exclusion,
leases measured by the database's clock, renew and release by the holder only, fences that
only grow, and a first fence above a watermark fenced by the old file lock (time_ns)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.coordination.locks import LockGrant
from trestle_tasks.store.dbclock import db_now
from trestle_tasks.store.migrate import evolve_bookkeeping
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.store.sync_log import SyncLog, Watermark

LEGACY_FENCE = 1_800_000_000_000_000_000  # what FileRunLock wrote: time.time_ns()


def a_lock(target: StoreTarget) -> DatabaseRunLock:
    return DatabaseRunLock(target.engine, schema=target.schema)


def lock_row(target: StoreTarget, name: str) -> dict:
    table = bookkeeping(target.schema)["etl_run_lock"]
    with target.engine.connect() as conn:
        row = conn.execute(sa.select(table, db_now(conn.dialect).label("db_now"))
                           .where(table.c.name == name)).mappings().one()
    return dict(row)


def test_one_holder_at_a_time_and_only_the_holder_renews_or_releases(store_target):  # noqa: F811
    lock = a_lock(store_target)
    first = lock.acquire("Property", "run-a", 60)
    assert first is not None and first.fence >= 1
    assert lock.acquire("Property", "run-b", 60) is None
    holder = lock.holder("Property")
    assert holder is not None and (holder.owner, holder.fence) == ("run-a", first.fence)
    assert 55 < holder.ttl_s <= 60
    # Another resource is another lock.
    assert lock.acquire("Member", "run-b", 60) is not None

    impostors = [LockGrant("Property", "run-b", first.fence),
                 LockGrant("Property", "run-a", first.fence + 1)]
    for impostor in impostors:
        assert not lock.renew(impostor, 60)
        assert not lock.release(impostor)
    assert lock.holder("Property").owner == "run-a"
    assert lock.renew(first, 60)
    assert lock.release(first)
    assert lock.holder("Property") is None
    assert not lock.release(first)  # twice: nothing left to free
    second = lock.acquire("Property", "run-b", 60)
    assert second is not None and second.fence > first.fence


def test_concurrent_acquirers_make_exactly_one_holder(store_target):  # noqa: F811
    lock = a_lock(store_target)
    lock.holder("Property")  # the table first: creating it is not what is raced here
    barrier = threading.Barrier(8)
    grants = []

    def contend(owner: str) -> None:
        barrier.wait()
        grants.append(lock.acquire("Property", owner, 60))

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [g for g in grants if g is not None]
    assert len(grants) == 8 and len(won) == 1
    assert lock.holder("Property").owner == won[0].owner


def test_a_lapsed_lease_is_free_resumed_until_taken_then_lost(store_target):  # noqa: F811
    lock = a_lock(store_target)
    old = lock.acquire("Property", "paused-run", 1.0)
    row = lock_row(store_target, "Property")
    # The lease is the database's: acquired at its "now", ending a TTL later.
    assert abs((row["db_now"] - row["acquired_at"]).total_seconds()) < 1
    assert timedelta(seconds=0.99) <= row["expires_at"] - row["acquired_at"] \
        <= timedelta(seconds=1.01)
    time.sleep(1.3)
    assert lock.holder("Property") is None  # free for the next run to take
    # Nobody took it: its holder, only slow, resumes it with the same fence.
    assert lock.renew(old, 1.0)
    holder = lock.holder("Property")
    assert (holder.owner, holder.fence) == ("paused-run", old.fence)
    time.sleep(1.3)
    new = lock.acquire("Property", "next-run", 60)
    assert not lock.renew(old, 60)  # taken over: lost for good
    assert new is not None and new.fence > old.fence
    assert not lock.release(old)  # the paused run never frees its successor's lock
    assert lock.holder("Property").owner == "next-run"


def test_fences_only_grow_across_holders_and_releases(store_target):  # noqa: F811
    lock = a_lock(store_target)
    fences = []
    for i in range(5):
        grant = lock.acquire("Office", f"run-{i}", 60)
        fences.append(grant.fence)
        assert lock.release(grant)
    assert fences == sorted(set(fences)) and len(fences) == 5


def test_the_first_fence_is_above_a_watermark_fenced_by_the_old_file_lock(store_target):  # noqa: F811
    evolve_bookkeeping(store_target.engine, store_target.schema)
    sync_log = SyncLog(store_target.engine, schema=store_target.schema)
    legacy_mark = Watermark.parse("2026-01-01T00:00:00.0000000Z")
    assert sync_log.advance_watermark("Property", legacy_mark, run_id="old-local",
                                     fence=LEGACY_FENCE)
    lock = a_lock(store_target)
    grant = lock.acquire("Property", "new-run", 60)
    assert grant.fence == LEGACY_FENCE + 1
    # ... so the new run moves the watermark, and the next one does too.
    later = Watermark.parse("2026-01-02T00:00:00.0000000Z")
    assert sync_log.advance_watermark("Property", later, run_id="new-run", fence=grant.fence)
    lock.release(grant)
    after = lock.acquire("Property", "newer-run", 60)
    assert after.fence == grant.fence + 1
    assert sync_log.advance_watermark("Property", Watermark.parse("2026-01-03T00:00:00Z"),
                                     run_id="newer-run", fence=after.fence)


def test_a_database_made_before_the_lock_table_gets_it_on_first_use(store_target):  # noqa: F811
    evolve_bookkeeping(store_target.engine, store_target.schema)
    with store_target.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {store_target.table('etl_run_lock')}")
    assert not sa.inspect(store_target.engine).has_table("etl_run_lock",
                                                         schema=store_target.schema)
    assert a_lock(store_target).acquire("Property", "run-a", 60) is not None
    assert evolve_bookkeeping(store_target.engine, store_target.schema) == []


@pytest.mark.parametrize("seconds", [0.0, 90.5])
def test_the_database_clock_reads_utc(store_target, seconds):  # noqa: F811
    from trestle_tasks.store.dbclock import db_now_plus

    with store_target.engine.connect() as conn:
        value = conn.execute(sa.select(db_now_plus(conn.dialect, seconds))).scalar_one()
    expected = datetime.now(UTC) + timedelta(seconds=seconds)
    assert value.tzinfo is not None and abs((value - expected).total_seconds()) < 5
