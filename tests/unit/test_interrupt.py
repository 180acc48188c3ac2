"""A Ctrl-C's cleanup without services: what is said about the run, when SIGINT waits, and
that the operator's own interruption alerts nobody."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from trestle_tasks.coordination.locks import LockGrant, LockHolder
from trestle_tasks.monitoring.alerts.rules import Thresholds, run_alerts
from trestle_tasks.store.sync_log import INTERRUPTED, SyncRun
from trestle_tasks.sync.interrupt import (
    RunInterrupted,
    sigint_deferred,
    sigint_shielded,
    stop_run,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def a_run(status: str, details: dict | None = None) -> SyncRun:
    return SyncRun(run_id="r1", resource="Property", status=status,
                   started_at=NOW - timedelta(minutes=1), finished_at=NOW,
                   records_fetched=100, records_upserted=100, records_rejected=0,
                   records_deleted=0, records_duplicate=0, api_requests=3, windows_total=4,
                   windows_ok=1, windows_failed=1, watermark_from=None, watermark_to=None,
                   error="interrupted by its operator (Ctrl-C)", details=details)


@pytest.mark.parametrize("details", [None, {"kind": "reconcile", "dry_run": False}],
                         ids=["sync", "reconcile"])
def test_an_interrupted_run_alerts_nobody(details):
    limits = Thresholds(drift_records=0)
    assert run_alerts(a_run(INTERRUPTED, details), limits) == []
    assert run_alerts(a_run("failed", details), limits) != []  # as before


class FakeLog:
    def __init__(self, status: str | None, fail: bool = False) -> None:
        self.status, self.fail, self.closed = status, fail, []

    def close_run(self, run_id, resource, *, status, error=None):
        if self.fail:
            raise OSError("database gone")
        self.closed.append((run_id, resource, status, error))
        return None if self.status is None else a_run(self.status)


class FakeStore:
    def __init__(self, log: FakeLog) -> None:
        self.sync_log = log


class FakeLock:
    def __init__(self, owner: str | None) -> None:
        self.owner, self.released = owner, []

    def holder(self, name):
        return None if self.owner is None else LockHolder(self.owner, 7, 30.0)

    def release(self, grant):
        self.released.append(grant)
        if grant.owner == self.owner:
            self.owner = None
            return True
        return False


def test_an_open_run_is_closed_interrupted_and_its_lock_released():
    log, lock = FakeLog(INTERRUPTED), FakeLock("r1")
    stopped = stop_run(FakeStore(log), lock, resource="Property", run_id="r1",
                       grant=LockGrant("Property", "r1", 7))
    assert isinstance(stopped, KeyboardInterrupt)
    assert log.closed == [("r1", "Property", INTERRUPTED,
                           "interrupted by its operator (Ctrl-C)")]
    assert lock.owner is None and stopped.lock_released
    assert stopped.describe() == ("Property run r1 marked interrupted; its lock was "
                                  "released")


def test_without_a_grant_only_this_runs_lock_is_released():
    lock = FakeLock("r1")  # taken, but the Ctrl-C came before the grant did
    stopped = stop_run(FakeStore(FakeLog(None)), lock, resource="Property", run_id="r1",
                       grant=None)
    assert lock.owner is None and stopped.lock_released
    assert "stopped before its sync log row was written" in stopped.describe()
    other = FakeLock("r2")
    stop_run(FakeStore(FakeLog(None)), other, resource="Property", run_id="r1", grant=None)
    assert other.owner == "r2" and other.released == []


def test_a_run_that_had_ended_is_left_as_it_was():
    stopped = stop_run(FakeStore(FakeLog("succeeded")), FakeLock(None),
                       resource="Property", run_id="r1", grant=None, kind="reconcile")
    assert stopped.describe() == ("Property reconcile r1 had already ended succeeded; its "
                                  "lock was released")


def test_a_failed_cleanup_step_is_named_and_the_lock_still_released():
    lock = FakeLock("r1")
    stopped = stop_run(FakeStore(FakeLog(None, fail=True)), lock, resource="Property",
                       run_id="r1", grant=LockGrant("Property", "r1", 7))
    assert lock.owner is None
    assert "could not be marked interrupted (OSError: database gone)" in stopped.describe()
    assert RunInterrupted("P", "r", problem="x").describe().endswith(
        "its lock could not be released and lapses with its lease")


def test_sigint_waits_for_a_deferred_block_and_is_raised_after_it():
    done = []
    with pytest.raises(KeyboardInterrupt), sigint_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the block went on")
    assert done == ["the block went on"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_does_not_cut_the_cleanup_short():
    with sigint_shielded():
        os.kill(os.getpid(), signal.SIGINT)
        # noted: the next one would end the process without Python
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
